"""README.md says what the code does: its Python snippets import names that exist, use config
keys that validate and attributes the records have; its CLI table lists exactly the commands of
the Typer app (and flags they take); its Layout names folders that exist. The commands that
README.md, eval/RESULTS.md, eval/README.md and finetune/README.md print name commands, scripts
and flags that exist, and the plots they link exist. Fast and offline: nothing here loads a
dataset or a model.

To check that these tests catch a stale README, point them at an edited copy:
``LLMRANK_README=path/to/edited-README.md pytest tests/test_readme.py``."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib
import inspect
import json
import os
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import typer

from llmrank.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
README = Path(os.environ.get("LLMRANK_README", ROOT / "README.md"))
SECTIONS = set(Config.model_fields) - {"seed"}


def readme() -> str:
    return README.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text under ``## title`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", readme(), re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def python_snippets() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", section("Python"), re.S)
    assert blocks, "README's Python section has no ```python block"
    return blocks


def prose(text: str) -> str:
    """``text`` without its fenced code blocks."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


# ---- Python section ------------------------------------------------------------------------

def test_python_snippets_parse_and_their_imports_exist():
    for code in python_snippets():
        tree = ast.parse(code)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    assert hasattr(module, alias.name), f"README imports {alias.name} from {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)


def _config_dicts(code: str) -> list[dict[str, Any]]:
    """The literal dicts given to ``Recommender.from_config`` in ``code``."""
    out = []
    for node in ast.walk(ast.parse(code)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "from_config" and node.args):
            out.append(ast.literal_eval(node.args[0]))
    return out


def test_the_snippet_config_validates():
    dicts = [d for code in python_snippets() for d in _config_dicts(code)]
    assert dicts, "README's Python section passes no literal dict to Recommender.from_config"
    for raw in dicts:
        cfg = load_config(raw)  # every section and key must exist (extra keys are refused)
        for name, body in raw.items():
            if isinstance(body, dict):
                for key, value in body.items():
                    if key != "options":
                        assert getattr(getattr(cfg, name), key) == value


def test_alternatives_named_in_snippet_comments_are_valid():
    """``"kind": "text",  # text | sequential | fused`` and ``# "prior": "familiarity" ...``:
    every value a comment offers for a key of the section on that line is accepted."""
    from llmrank.registry import policies

    checked = 0
    for code in python_snippets():
        current: str | None = None
        for line in code.splitlines():
            text, _, comment = line.partition("#")
            opened = re.search(r'"(\w+)":\s*\{\s*"(\w+)"', text)
            if opened:
                current = opened.group(1)
            if not comment or current not in SECTIONS:
                continue
            key = opened.group(2) if opened else None
            for k, v in re.findall(r'"(\w+)":\s*"([\w-]+)"', comment):
                load_config({current: {k: v}})
                checked += 1
            alternatives = [a.strip(" ;") for a in comment.split("|")] if "|" in comment else []
            for alt in alternatives:
                assert re.fullmatch(r"[\w-]+", alt), f"comment alternative {alt!r}"
                load_config({current: {key: alt}})
                if (current, key) == ("policy", "name"):
                    assert alt in policies.names(), f"README names policy {alt!r}"
                checked += 1
    assert checked, "no comment alternatives found in the Python snippet"


def test_inline_config_dicts_in_the_python_section_validate():
    spans = re.findall(r"`(\{.*?\})`", prose(section("Python")), re.S)
    literal = []
    for span in spans:
        try:
            literal.append(ast.literal_eval(span))
        except (ValueError, SyntaxError):
            continue  # `"index": {"path": FOLDER}` names a placeholder
    assert literal, "no inline config dict in the Python section's text"
    for raw in literal:
        load_config(raw)


def _resolve_annotation(annotation: Any, owner: Any) -> Any:
    """A string annotation evaluated in ``owner``'s module, or None when it cannot be."""
    if not isinstance(annotation, str):
        return annotation
    module = importlib.import_module(owner.__module__)
    try:
        return eval(annotation, vars(module))
    except Exception:
        return None


def _attribute_type(cls: type, attr: str) -> Any:
    if dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            if f.name == attr:
                return _resolve_annotation(f.type, cls)
    member = getattr(cls, attr, None)
    if isinstance(member, property) and member.fget is not None:
        return _resolve_annotation(inspect.signature(member.fget).return_annotation, cls)
    return None


class _Checker(ast.NodeVisitor):
    """Follows the snippet's variables through return and field annotations and checks
    each attribute and keyword argument against the class it lands on. A type it cannot
    tell (a union, an unannotated return) ends the check of that expression, silently."""

    def __init__(self) -> None:
        self.env: dict[str, Any] = {}
        self.checked = 0

    def instance_type(self, node: ast.AST) -> Any:
        """The class of the value ``node`` evaluates to (None: unknown or not an instance)."""
        if isinstance(node, ast.Name):
            kind, obj = self.env.get(node.id, (None, None))
            return obj if kind == "inst" else None
        if isinstance(node, ast.Attribute):
            owner = self.instance_type(node.value)
            if isinstance(owner, type):
                assert hasattr(owner, node.attr) or node.attr in _field_names(owner), \
                    f"README uses .{node.attr} of a {owner.__name__}, which has none"
                self.checked += 1
                return _plain_class(_attribute_type(owner, node.attr))
            return None
        if isinstance(node, ast.Subscript):
            container = self.container_type(node.value)
            return _plain_class(container)
        if isinstance(node, ast.Call):
            return self.call_type(node)
        return None

    def container_type(self, node: ast.AST) -> Any:
        """The element class of a ``list[X]`` expression."""
        if isinstance(node, ast.Attribute):
            owner = self.instance_type(node.value)
            if isinstance(owner, type):
                hint = _attribute_type(owner, node.attr)
                args = typing.get_args(hint)
                return args[0] if args else None
        return None

    def callable_of(self, func: ast.AST) -> tuple[Any, bool]:
        """(the object called, whether it is a class), or (None, False)."""
        if isinstance(func, ast.Name):
            kind, obj = self.env.get(func.id, (None, None))
            return (obj, True) if kind == "cls" else (None, False)
        if isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and self.env.get(func.value.id, (None,))[0] == "cls":
                cls = self.env[func.value.id][1]
                assert hasattr(cls, func.attr), f"README calls {cls.__name__}.{func.attr}"
                self.checked += 1
                return getattr(cls, func.attr), False
            owner = self.instance_type(func.value)
            if isinstance(owner, type):
                assert hasattr(owner, func.attr), f"README calls .{func.attr}() of a {owner.__name__}"
                self.checked += 1
                return getattr(owner, func.attr), False
        return None, False

    def call_type(self, node: ast.Call) -> Any:
        target, is_class = self.callable_of(node.func)
        if target is None:
            return None
        signature = inspect.signature(target)
        bound_self = not is_class and inspect.isfunction(target)  # an unbound method of an instance
        args = ([None] if bound_self else []) + [None] * len(node.args)
        kwargs = {k.arg: None for k in node.keywords if k.arg}
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise AssertionError(f"README calls {getattr(target, '__qualname__', target)} "
                                 f"with arguments it does not take: {exc}") from None
        self.checked += 1
        if is_class:
            return target
        owner = getattr(target, "__self__", None) or target
        return _plain_class(_resolve_annotation(signature.return_annotation,
                                                owner if isinstance(owner, type) else target))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = importlib.import_module(node.module or "")
        for alias in node.names:
            obj = getattr(module, alias.name)
            self.env[alias.asname or alias.name] = ("cls" if isinstance(obj, type) else "obj", obj)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        cls = self.instance_type(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.env[target.id] = ("inst", cls) if isinstance(cls, type) else (None, None)

    def visit_For(self, node: ast.For) -> None:
        element = self.container_type(node.iter)
        if isinstance(node.target, ast.Name) and isinstance(element, type):
            self.env[node.target.id] = ("inst", element)
        for child in node.body:
            self.visit(child)

    def visit_Expr(self, node: ast.Expr) -> None:
        self.instance_type(node.value)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        self.instance_type(node)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.instance_type(node)  # checks the whole chain (a.b.c) itself


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()


def _plain_class(hint: Any) -> Any:
    """``X`` for a class or ``X | None``; None for anything else."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 and isinstance(args[0], type) else None


def test_python_snippets_use_attributes_and_arguments_that_exist():
    checker = _Checker()
    for code in python_snippets():  # the second snippet continues the first (rec, resp)
        checker.visit(ast.parse(code))
    assert checker.checked >= 10, f"only {checker.checked} names checked: the checker lost track"


def test_policy_options_named_in_the_text_reach_the_explore_step():
    """The snake_case names in the Python section's text (``settle_seconds``,
    ``learn_every_seconds``) are ``[policy] options`` of the explore step, with the defaults
    the text gives."""
    from llmrank.explore.step import ExploreStep

    text = prose(section("Python"))
    names = set(re.findall(r"`([a-z]+(?:_[a-z]+)+)`", text))
    assert names, "no `snake_case` option named in the Python section's text"
    for name in names:
        step = ExploreStep.from_config(load_config({"policy": {"options": {name: 7.0}}}),
                                       open_feedback=False)
        assert getattr(step, name, None) == 7.0, \
            f"README names [policy] options {name}, which does not reach the explore step"
    stated = re.findall(r"`(\w+)`,?\s*\(?default (\d+)( h)?", text)
    assert {name for name, _, _ in stated} == names, "every option named needs its default stated"
    default_step = ExploreStep.from_config(load_config({}), open_feedback=False)
    for name, value, hours in stated:
        assert getattr(default_step, name) == float(value) * (3600 if hours else 1), \
            f"README says {name} defaults to {value}{hours}"


# ---- dotted config keys anywhere in the README ----------------------------------------------

_KEY = re.compile(r"(?<![\w./@-])(" + "|".join(sorted(SECTIONS)) + r")\.([a-z_]+(?:\.[a-z_]+)*)"
                  r"(?:\s*=\s*(\"[^\"]*\"|[^\s`|)]+))?")
_FILE_SUFFIXES = {"sqlite", "toml", "py", "md", "json", "jsonl", "yaml"}


def _config_keys() -> list[tuple[str, str | None]]:
    """(``section.key``, value or None) for each dotted config key in backticks."""
    found = []
    for span in re.findall(r"`([^`\n]+)`", prose(readme())):
        for sect, rest, value in _KEY.findall(span):
            if rest.split(".")[-1] in _FILE_SUFFIXES:
                continue
            found.append((f"{sect}.{rest}", value or None))
    for sect, key, value in re.findall(r"`\[(\w+)\] (\w+) = (\"[^\"]*\"|\S+)`", readme()):
        found.append((f"{sect}.{key}", value))
    return found


def test_dotted_config_keys_in_the_readme_exist_and_take_the_values_shown():
    keys = _config_keys()
    assert keys, "no `section.key` found in the README"
    for key, value in keys:
        parts = key.split(".")
        model: Any = Config
        for i, part in enumerate(parts):
            assert part in model.model_fields, f"README names config key {key!r}: no {part!r}"
            if part == "options":
                break
            if i < len(parts) - 1:
                model = model.model_fields[part].annotation
        if value is not None:
            parsed: Any = value.strip('"')
            if not value.startswith('"'):
                with contextlib.suppress(ValueError):  # as --set reads VALUE
                    parsed = json.loads(value)
            load_config({}, {key: parsed})


# ---- CLI table ------------------------------------------------------------------------------

def _cli_tree() -> dict[str, Any]:
    from llmrank.cli.main import app

    return typer.main.get_command(app).commands  # type: ignore[attr-defined]


def _table_rows() -> list[tuple[str, str]]:
    rows = []
    for line in section("CLI").splitlines():
        match = re.match(r"\|\s*`llmrank ([^`]*)`\s*\|(.*)\|\s*$", line)
        if match:
            rows.append((match.group(1).replace("\\|", "|"), match.group(2)))
    assert rows, "README's CLI section has no `llmrank ...` table rows"
    return rows


def _table_commands() -> dict[str, set[str]]:
    """Command name -> the subcommands its row lists (empty for a plain command)."""
    tree = _cli_tree()
    out: dict[str, set[str]] = {}
    for usage, _ in _table_rows():
        words = usage.split()
        name = words[0]
        subs: set[str] = set()
        if len(words) > 1 and hasattr(tree.get(name), "commands"):
            subs = set(words[1].split("|"))
        out[name] = subs
    return out


def test_cli_table_lists_exactly_the_registered_commands():
    tree = _cli_tree()
    listed = _table_commands()
    assert set(listed) == set(tree), (
        f"in the README table only: {sorted(set(listed) - set(tree))}; "
        f"registered only: {sorted(set(tree) - set(listed))}")
    for name, cmd in tree.items():
        if hasattr(cmd, "commands"):
            assert listed[name] == set(cmd.commands), (
                f"llmrank {name}: README lists {sorted(listed[name])}, "
                f"the app has {sorted(cmd.commands)}")


def _flags(cmd: Any) -> set[str]:
    if hasattr(cmd, "commands"):
        return set().union(*(_flags(sub) for sub in cmd.commands.values()))
    return {opt for p in cmd.params for opt in (*p.opts, *getattr(p, "secondary_opts", []))}


def test_flags_in_the_cli_table_exist_on_their_command():
    tree = _cli_tree()
    for usage, description in _table_rows():
        name = usage.split()[0]
        flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", usage + description))
        missing = flags - _flags(tree[name])
        assert not missing, f"llmrank {name}: README names {sorted(missing)}, which it does not take"


@pytest.mark.skipif("--json" not in readme(), reason="the README makes no --json promise")
def test_every_command_takes_json():
    def leaves(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
        out = []
        for name, cmd in tree.items():
            if hasattr(cmd, "commands"):
                out += leaves(cmd.commands, f"{prefix}{name} ")
            else:
                out.append((prefix + name, cmd))
        return out

    without = [name for name, cmd in leaves(_cli_tree()) if "--json" not in _flags(cmd)]
    assert not without, f"commands without --json: {without}"


# ---- Layout ---------------------------------------------------------------------------------

def _layout_paths() -> list[str]:
    block = re.search(r"```\n(.*?)```", section("Layout"), re.S)
    assert block, "README's Layout section has no code block"
    paths, parent = [], ""
    for line in block.group(1).splitlines():
        indented = line.startswith("  ")
        names = []
        for word in line.split():
            if not re.fullmatch(r"[\w.]+(/|\.py)", word):
                break
            names.append(word)
        if not indented and names:
            parent = names[0] if names[0] == "llmrank/" else ""
        paths += [(parent if indented else "") + n for n in names]
    return paths


def test_layout_names_paths_that_exist_and_every_subpackage():
    paths = _layout_paths()
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"README Layout names paths that do not exist: {missing}"
    subpackages = {f"llmrank/{d.name}/" for d in (ROOT / "llmrank").iterdir()
                   if (d / "__init__.py").is_file() and not d.name.startswith("_")}
    unlisted = subpackages - set(paths)
    assert not unlisted, f"README Layout omits {sorted(unlisted)}"


# ---- commands and plots in the other docs -------------------------------------------------
# eval/RESULTS.md, eval/README.md and finetune/README.md print the commands behind their
# numbers; a renamed flag or script leaves them unrunnable without any other test noticing.

DOCS = [README, ROOT / "eval" / "RESULTS.md", ROOT / "eval" / "README.md",
        ROOT / "finetune" / "README.md"]
_HEAD = re.compile(r"(?:^|(?<=[\s;(]))(?<!import )(llmrank|python3? (eval/[\w/]+\.py))(?=\s|$)")
_END = re.compile(r"\s#|;|&&|\s\|\s|\)(?:\s|$)")
_FLAG = re.compile(r"--?[A-Za-z][\w-]*")


def _code_spans(text: str) -> list[str]:
    """Fenced blocks, indented lines (4+ spaces) and inline code, with ``\\`` line
    continuations joined: every place a doc prints a command."""
    spans = []
    for lang, block in re.findall(r"```([^\n]*)\n(.*?)```", text, re.S):
        if lang != "python":
            spans += block.replace("\\\n", " ").splitlines()
    rest = re.sub(r"```.*?```", "", text, flags=re.S)
    spans += [ln for ln in rest.replace("\\\n", " ").splitlines() if ln.startswith("    ")]
    spans += re.findall(r"`([^`]+)`", re.sub(r"^    .*$", "", rest, flags=re.M))
    return [" ".join(s.split()) for s in spans]


def _doc_commands() -> list[tuple[str, str, list[str]]]:
    """(doc name, 'llmrank' or the script path, the words after it) for each command."""
    found = []
    for doc in DOCS:
        for span in _code_spans(doc.read_text(encoding="utf-8")):
            for m in _HEAD.finditer(span):
                words = _END.split(span[m.end():], maxsplit=1)[0].split()
                found.append((doc.name, m.group(2) or "llmrank", words))
    return found


def test_llmrank_commands_in_the_docs_exist_with_their_flags():
    tree = _cli_tree()
    checked = 0
    for doc, head, words in _doc_commands():
        if head != "llmrank" or not words or not re.fullmatch(r"[a-z][\w-]*", words[0]):
            continue  # `llmrank ...` as a name in prose
        assert words[0] in tree, f"{doc}: llmrank {words[0]} is not a command"
        name, cmds, args = words[0], [tree[words[0]]], words[1:]
        if hasattr(cmds[0], "commands") and args and re.fullmatch(r"[\w\\|-]+", args[0]):
            subs = args[0].replace("\\", "").split("|")
            missing = [s for s in subs if s not in cmds[0].commands]
            assert not missing, f"{doc}: llmrank {name} has no {missing}"
            name, cmds, args = f"{name} {'|'.join(subs)}", [cmds[0].commands[s] for s in subs], args[1:]
        for arg in args:
            flag = arg.split("=")[0]
            if _FLAG.fullmatch(flag):
                assert any(flag in _flags(c) | {"--help"} for c in cmds), \
                    f"{doc}: llmrank {name} takes no {flag}"
        checked += 1
    assert checked >= 20, f"only {checked} llmrank commands found in the docs"


def test_eval_scripts_in_the_docs_exist_with_their_flags():
    checked = 0
    for doc, head, words in _doc_commands():
        if head == "llmrank":
            continue
        script = ROOT / head
        assert script.is_file(), f"{doc}: {head} does not exist"
        source = script.read_text(encoding="utf-8")
        defined = set(re.findall(r"[\"'](--[A-Za-z][\w-]*)[\"']", source)) | {"--help", "-h"}
        defined |= {f"--no-{f[2:]}" for f in defined}  # BooleanOptionalAction
        for arg in words:
            flag = arg.split("=")[0]
            if _FLAG.fullmatch(flag):
                assert flag in defined, f"{doc}: {head} takes no {flag}"
        checked += 1
    assert checked >= 40, f"only {checked} eval script commands found in the docs"


def test_plots_the_docs_link_exist():
    checked = 0
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        targets = re.findall(r"\]\(([^)\s]+\.png)\)", text)
        targets += [t for t in re.findall(r"`(eval/plots/[\w./-]+\.png)`", text)]
        for target in targets:
            path = (ROOT / target) if target.startswith("eval/") else (doc.parent / target)
            assert path.is_file(), f"{doc.name} links {target}, which does not exist"
            checked += 1
    assert checked >= 20, f"only {checked} plot links found"
