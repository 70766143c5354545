"""Versioned prompt templates: a TOML file with a name, a version, declared inputs and
Jinja2 message bodies.

Why declared inputs: a template and the code that fills it evolve separately (the finetune
recipe renders the same template as the reranker). Checking at load time that the body uses
only declared inputs, and at render time that exactly the declared inputs arrive with the
right types, turns a silent prompt drift into a PromptError. Inputs marked ``untrusted`` are
escaped (see escape.py) before they reach the body, whatever the template author wrote."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from llmrank.errors import PromptError
from llmrank.prompts.chat import ChatFormatter, ChatMessage
from llmrank.prompts.escape import escape_tree

_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list, tuple),
    "mapping": (dict,),
}
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class InputSpec:
    """One declared input of a template."""

    name: str
    type: str = "str"
    required: bool = True
    untrusted: bool = False  # escape every string inside it before rendering
    description: str = ""


@dataclass(frozen=True)
class RenderedPrompt:
    """A rendered template: messages plus the text that opens the assistant's answer."""

    template: str
    version: str
    messages: tuple[ChatMessage, ...]
    answer_prefix: str = ""

    def to_text(self, formatter: ChatFormatter) -> str:
        """Apply the model's chat template, then open the answer (e.g. 'Answer:')."""
        return formatter.format_chat(self.messages, add_generation_prompt=True) + self.answer_prefix


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    messages: tuple[tuple[str, str], ...]  # (role, jinja body)
    inputs: tuple[InputSpec, ...]
    description: str = ""
    answer_prefix: str = ""
    source: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    # ---- loading -----------------------------------------------------------------------
    @classmethod
    def from_toml(cls, text: str, source: str = "<string>") -> PromptTemplate:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PromptError(f"{source}: invalid TOML: {exc}") from exc
        return cls.from_dict(data, source)

    @classmethod
    def from_file(cls, path: str | Path) -> PromptTemplate:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise PromptError(f"{path}: template is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        except OSError as exc:
            raise PromptError(f"cannot read template {path}: {exc}") from exc
        return cls.from_toml(text, str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> PromptTemplate:
        for key in ("name", "version", "messages", "inputs"):
            if key not in data:
                raise PromptError(f"{source}: template lacks {key!r}")
        if not isinstance(data["version"], str):  # TOML reads version = 1.10 as the float 1.1
            raise PromptError(f"{source}: version must be a string, e.g. \"1.0.0\" "
                              f"(got {data['version']!r})")
        if not isinstance(data["inputs"], Mapping):
            raise PromptError(f"{source}: inputs must be a table of name = type or {{ type = ... }}")
        inputs = [_input_spec(name, spec, source) for name, spec in data["inputs"].items()]
        if not isinstance(data["messages"], list):
            raise PromptError(f"{source}: messages must be a list of {{ role, content }} tables")
        messages = []
        for msg in data["messages"]:
            role, content = (msg.get("role"), msg.get("content")) if isinstance(msg, Mapping) else (None, None)
            if role not in _ROLES or not isinstance(content, str):
                raise PromptError(f"{source}: each of the messages needs a role in {_ROLES} and a content")
            messages.append((role, content))
        known = {"name", "version", "messages", "inputs", "description", "answer_prefix"}
        tmpl = cls(
            name=str(data["name"]), version=str(data["version"]), messages=tuple(messages),
            inputs=tuple(inputs), description=str(data.get("description", "")),
            answer_prefix=str(data.get("answer_prefix", "")), source=source,
            meta={k: v for k, v in data.items() if k not in known},
        )
        tmpl._check_variables()
        return tmpl

    # ---- checks ------------------------------------------------------------------------
    @cached_property
    def _compiled(self) -> list[tuple[str, Any]]:
        env = _environment()
        try:
            return [(role, env.from_string(body)) for role, body in self.messages]
        except Exception as exc:  # jinja2.TemplateSyntaxError
            raise PromptError(f"{self.source}: template syntax error: {exc}") from exc

    def _check_variables(self) -> None:
        """Every variable the bodies read must be declared; every declared input used."""
        from jinja2 import meta

        env = _environment()
        used: set[str] = set()
        for _, body in self.messages:
            try:
                used |= meta.find_undeclared_variables(env.parse(body))
            except Exception as exc:
                raise PromptError(f"{self.source}: template syntax error: {exc}") from exc
        declared = {i.name for i in self.inputs}
        if used - declared:
            raise PromptError(f"{self.source}: template uses undeclared inputs {sorted(used - declared)}")
        if declared - used:
            raise PromptError(f"{self.source}: declared inputs never used {sorted(declared - used)}")

    def validate_inputs(self, values: Mapping[str, Any]) -> None:
        specs = {i.name: i for i in self.inputs}
        unknown = set(values) - set(specs)
        if unknown:
            raise PromptError(f"{self.id}: unknown inputs {sorted(unknown)}; declared: {sorted(specs)}")
        for spec in self.inputs:
            if spec.name not in values or values[spec.name] is None:
                if spec.required:
                    raise PromptError(f"{self.id}: missing required input {spec.name!r}")
                continue
            value = values[spec.name]
            ok = isinstance(value, _TYPES[spec.type]) and not (spec.type == "int" and isinstance(value, bool))
            if not ok:
                raise PromptError(
                    f"{self.id}: input {spec.name!r} must be {spec.type}, got {type(value).__name__}"
                )

    # ---- rendering ---------------------------------------------------------------------
    def render(self, extra_specials: Sequence[str] = (), **values: Any) -> RenderedPrompt:
        """Check and escape the inputs, render every message, return a RenderedPrompt."""
        self.validate_inputs(values)
        ctx: dict[str, Any] = {}
        for spec in self.inputs:
            value = values.get(spec.name)
            ctx[spec.name] = escape_tree(value, extra_specials) if spec.untrusted else value
        out = []
        for role, compiled in self._compiled:
            try:
                text = compiled.render(**ctx)
            except Exception as exc:  # jinja2.UndefinedError and friends
                raise PromptError(f"{self.id}: render failed: {exc}") from exc
            out.append(ChatMessage(role, text.strip()))  # type: ignore[arg-type]
        return RenderedPrompt(self.name, self.version, tuple(out), self.answer_prefix)


def _input_spec(name: str, spec: Any, source: str) -> InputSpec:
    """One ``[inputs]`` entry, checked: a wrong shape is a PromptError naming the file, not a
    TypeError, and ``required = "no"`` must not read as true."""
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise PromptError(f"{source}: input {name!r} must be a type name or a table, got {spec!r}")
    spec = dict(spec)
    unknown = set(spec) - {"type", "required", "untrusted", "description"}
    if unknown:
        raise PromptError(f"{source}: input {name!r} has unknown keys {sorted(unknown)}")
    kind = spec.get("type", "str")
    if not isinstance(kind, str) or kind not in _TYPES:
        raise PromptError(f"{source}: input {name!r} has unknown type {kind!r}; known: {sorted(_TYPES)}")
    for flag in ("required", "untrusted"):
        if not isinstance(spec.get(flag, False), bool):
            raise PromptError(f"{source}: input {name!r}: {flag!r} must be true or false")
    return InputSpec(name=name, type=kind, required=spec.get("required", True),
                     untrusted=spec.get("untrusted", False), description=str(spec.get("description", "")))


def _environment() -> Any:
    """Sandboxed, strict Jinja2: templates cannot reach Python internals, and a typo in a
    variable name fails instead of rendering an empty string."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=False,
    )
