"""What SFT and DPO share before training: load and split the data exactly as the eval harness
does, resolve the base model, build (or reuse) the training examples, and draw the fixed
validation sample.

Examples are cached in ``<out>/data`` with a fingerprint of everything that shapes them, so a
resumed run trains on the very same examples and does not rebuild a retriever; the validation
sample is cached next to them (its users and candidate lists) for the same reason."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrank.errors import ConfigError
from llmrank.finetune.config import ExampleSpec, Recipe
from llmrank.finetune.data import (
    EXAMPLES_VERSION,
    META_FILE,
    build_examples,
    describe,
    example_positions,
    save_examples,
)
from llmrank.finetune.negatives import (
    HardNegativeSource,
    build_retriever_negatives,
    load_retriever_negatives,
)
from llmrank.finetune.prompting import TokenizerPromptModel, make_builder
from llmrank.finetune.validation import (
    ValidationSample,
    catalog_room,
    sample_from_lists,
    validation_sample,
)
from llmrank.models.resolve import resolve_model
from llmrank.rerank.prompt import RankPromptBuilder

if TYPE_CHECKING:
    import datasets

    from llmrank.data.dataset import Dataset
    from llmrank.data.splits import LeaveOneOut
    from llmrank.eval.data import PreparedData

log = logging.getLogger(__name__)

VALIDATION_FILE = "validation_sample.json"  # in <out>/data: the cached validation sample
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class PreparedRun:
    recipe: Recipe
    data: PreparedData
    model_path: str
    prompt_model: TokenizerPromptModel
    builder: RankPromptBuilder
    examples: datasets.Dataset
    data_dir: Path
    data_meta: dict[str, Any]
    validation: ValidationSample | None


def load_data(recipe: Recipe, dataset: Dataset | None = None) -> PreparedData:
    """The eval harness's loader and preprocessing (min_rating, k-core, leave-one-out)."""
    from llmrank.eval.config import EvalData
    from llmrank.eval.data import prepare

    spec = recipe.data
    cfg = EvalData(dataset=spec.dataset, data_dir=spec.data_dir, kcore=spec.kcore,
                   min_rating=spec.min_rating)
    return prepare(cfg, dataset)


def data_fingerprint(recipe: Recipe, model_path: str, template_id: str) -> str:
    payload = {"data": recipe.to_dict()["data"], "prompt": recipe.to_dict()["prompt"],
               "examples": recipe.to_dict()["examples"], "seed": recipe.seed,
               "tokenizer": model_path, "template": template_id,
               "examples_version": EXAMPLES_VERSION}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def prepare_run(recipe: Recipe, *, dataset: Dataset | None = None,
                hard_source: HardNegativeSource | None = None,
                progress: Progress | None = None) -> PreparedRun:
    """Data, prompt builder, training examples (cached) and the validation sample."""
    from llmrank.finetune.data import load_examples

    prepared = load_data(recipe, dataset)
    model_path = resolve_model(recipe.base_model)
    prompt_model = TokenizerPromptModel.from_path(model_path, recipe.prompt.max_prompt_tokens)
    builder = make_builder(prompt_model, recipe.prompt)
    data_dir = recipe.out_dir() / "data"
    fp = data_fingerprint(recipe, model_path, builder.template.id)
    meta_path = data_dir / META_FILE
    spec = recipe.examples

    @functools.cache
    def retriever() -> HardNegativeSource | None:
        """The examples' retriever, built (or loaded) at most once and only when needed."""
        return hard_source or _retriever_source(recipe, prepared, progress)

    examples: datasets.Dataset
    cached = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if cached.get("fingerprint") == fp and cached.get("examples_version") == EXAMPLES_VERSION:
        log.info("reusing training examples in %s", data_dir)
        examples = load_examples(data_dir)
        meta = cached
    else:
        positions = example_positions(prepared.split, spec)
        check_examples_fit(prepared.split, spec, positions)
        needs = spec.hard_negatives > 0 or spec.candidates == "retrieved"
        source = retriever() if needs else hard_source

        def step(done: int, total: int) -> None:
            if progress:
                progress("rendering training prompts", done, total)

        rows = build_examples(prepared.split, builder, spec, seed=recipe.seed,
                              hard_source=source, progress=step)
        if not rows:
            raise ConfigError(f"no training example: the retriever's top {spec.n_candidates} "
                              f"held the target of none of {len(positions)} history prefixes "
                              "(examples.candidates = 'mixed' keeps every prefix)")
        meta = {
            "fingerprint": fp, "examples_version": EXAMPLES_VERSION, "dataset": recipe.data.dataset,
            "preprocessing": prepared.preprocessing, "template": builder.template.name,
            "template_version": builder.template.version, "prompt": recipe.to_dict()["prompt"],
            "examples": recipe.to_dict()["examples"], "seed": recipe.seed,
            "hard_source": type(source).__name__ if source is not None else None,
            "prefixes": len(positions),
        }
        save_examples(rows, data_dir, meta)
        meta["summary"] = describe(rows)
        examples = load_examples(data_dir)
    sample = cached_validation(recipe, prepared.split, data_dir / VALIDATION_FILE, fp, retriever)
    return PreparedRun(recipe, prepared, model_path, prompt_model, builder, examples,
                       data_dir, meta, sample)


def check_examples_fit(split: LeaveOneOut, spec: ExampleSpec,
                       positions: list[tuple[int, int]]) -> None:
    """ConfigError, before any prompt is rendered, when the data cannot give examples: no
    history long enough, or (mixed candidates) a user who touched so much of the catalog that
    ``n_candidates - 1`` never-touched negatives do not exist."""
    ds = split.dataset
    if not positions:
        users = split.train[: spec.max_users] if spec.max_users else split.train
        longest = max((len(t) for t in users), default=0)
        among = f"the first {spec.max_users} users" if spec.max_users else f"users of {ds.name!r}"
        raise ConfigError(
            f"no training example: none of {among} has more than examples.min_history = "
            f"{spec.min_history} training items (the longest has {longest}); lower "
            "examples.min_history or use a dataset with longer histories")
    if spec.candidates == "retrieved":
        return
    hists = ds.histories()
    room = catalog_room(ds.n_items, (hists[u] for u in {u for u, _ in positions}))
    if room < spec.n_candidates - 1:
        raise ConfigError(
            f"examples.n_candidates = {spec.n_candidates} needs {spec.n_candidates - 1} "
            f"negatives the user never touched, but a user touched all but {room} of the "
            f"{ds.n_items} items; use examples.n_candidates <= {room + 1}")


def validation_key(recipe: Recipe, fingerprint: str) -> str:
    """What the validation sample depends on: the examples' fingerprint (data, seed,
    retriever settings) and the sample's own settings."""
    v = recipe.to_dict()["validation"]
    payload = {"examples": fingerprint, "protocol": v["protocol"], "users": v["users"],
               "n_negatives": v["n_negatives"]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def cached_validation(recipe: Recipe, split: LeaveOneOut, path: Path, fingerprint: str,
                      retriever: Callable[[], HardNegativeSource | None]
                      ) -> ValidationSample | None:
    """The recipe's validation sample (None when off), read from ``path`` when it was drawn
    with the same key, else drawn and saved there: a resumed 'retrieved' validation does not
    rebuild the retriever (users and candidates kept as ids)."""
    val = recipe.validation
    if val.users <= 0:
        return None
    ds = split.dataset
    key = validation_key(recipe, fingerprint)
    if path.is_file():
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            log.info("reusing the validation sample in %s", path)
            users = np.asarray([ds.user_code(u) for u in cached["users"]], dtype=np.int64)
            return sample_from_lists(split, users, [ds.item_codes(c) for c in cached["candidates"]])
    by_retriever = retriever() if val.protocol == "retrieved" else None
    if val.protocol == "retrieved" and by_retriever is None:
        raise ConfigError("validation.protocol = 'retrieved' needs a retriever "
                          "(examples.retriever or examples.retriever_path)")
    sample = validation_sample(split, val.users, n_negatives=val.n_negatives, seed=recipe.seed,
                               retriever=by_retriever)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "key": key, "users": [ds.user_ids[u] for u in sample.users.tolist()],
        "candidates": [[c.item_id for c in cands] for cands in sample.candidates]}),
        encoding="utf-8")
    return sample


def _retriever_source(recipe: Recipe, prepared: PreparedData,
                      progress: Progress | None) -> HardNegativeSource | None:
    """The recipe's retriever: a saved one (``retriever_path``), or one built on the
    validation-stage visible data; None when the recipe names none."""
    spec = recipe.examples
    if spec.retriever_path:
        return load_retriever_negatives(spec.retriever_path)
    if spec.retriever == "none":
        return None
    what = f"building {spec.retriever} retriever"
    if progress:
        progress(what, 0, 1)
    source = build_retriever_negatives(spec.retriever, prepared.split, spec.retriever_options)
    if progress:
        progress(what, 1, 1)
    return source


def tokenize_sft(examples: datasets.Dataset, prompt_model: TokenizerPromptModel) -> datasets.Dataset:
    """``input_ids`` = the prompt tokens exactly as the backend encodes them for scoring, plus
    the label token; ``completion_mask`` marks the label only. TRL turns the mask into labels
    (-100 on the prompt) with ``completion_only_loss``. No EOS: only the label is scored."""

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        ids = prompt_model.encode(row["prompt"])
        label_id = prompt_model.label_ids([row["completion"]])[0]
        return {"input_ids": [*ids, label_id], "completion_mask": [0] * len(ids) + [1]}

    keep = {"input_ids", "completion_mask"}
    drop = [c for c in examples.column_names if c not in keep]
    return examples.map(encode, remove_columns=drop)


def out_path(recipe: Recipe, *parts: str) -> Path:
    return recipe.out_dir().joinpath(*parts)
