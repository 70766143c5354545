"""``llmrank prompts list|show|render``: the versioned templates of ``prompts/``
(``llmrank.prompts.list_templates`` / ``load_template``) and what a model really reads.

``render`` fills a template with a real user's history and candidates the way the pipeline
does (rank: ``RankPromptBuilder`` with its truncation; explain: the Explainer's prompt),
applies the model's chat template and counts tokens with the model's tokenizer. Only the
tokenizer is loaded, never the weights, so rendering is quick."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from llmrank.cli.common import (
    JsonOpt,
    VerboseOpt,
    console,
    parse_key_values,
    plain,
    print_json,
    setup_logging,
)
from llmrank.cli.index import ConfigOpt, DataDirOpt, DatasetOpt
from llmrank.cli.recommend import (
    AdapterOpt,
    BackendOpt,
    IndexOpt,
    ModelOpt,
    RetrieverOpt,
    SetOpt,
    build_recommender,
    pipeline_config,
)
from llmrank.config import Config
from llmrank.prompts import PromptTemplate, list_templates, load_template

app = typer.Typer(help="The versioned prompt templates (rank, explain, chat_system).", no_args_is_help=True)


def _inputs(t: PromptTemplate) -> list[dict[str, Any]]:
    return [{"name": i.name, "type": i.type, "required": i.required, "untrusted": i.untrusted,
             "description": i.description} for i in t.inputs]


def _describe(t: PromptTemplate) -> dict[str, Any]:
    return {"name": t.name, "version": t.version, "id": t.id, "description": t.description,
            "answer_prefix": t.answer_prefix, "inputs": _inputs(t), "source": t.source}


@app.command("list")
def list_cmd(json_out: bool = JsonOpt) -> None:
    """Every template found (user dirs in $LLMRANK_PROMPTS_DIR first), with its inputs."""
    templates = list_templates()
    if json_out:
        print_json([_describe(t) for t in templates])
        return
    table = Table(title="prompt templates")
    for col in ("name", "version", "inputs", "description", "source"):
        table.add_column(col)
    for t in templates:
        ins = ", ".join(f"{i.name}: {i.type}{'' if i.required else '?'}{' (untrusted)' if i.untrusted else ''}"
                        for i in t.inputs)
        table.add_row(*(plain(v) for v in (t.name, t.version, ins, t.description, t.source)))
    console.print(table)


@app.command("show")
def show(name: str = typer.Argument(..., help="Template name (rank), name@version or a .toml path."),
         json_out: bool = JsonOpt) -> None:
    """The raw template file (TOML with Jinja2 message bodies)."""
    t = load_template(name)
    raw = Path(t.source).read_text(encoding="utf-8") if Path(t.source).is_file() else ""
    if json_out:
        print_json({**_describe(t), "text": raw, "messages": [{"role": r, "content": c} for r, c in t.messages]})
        return
    console.print(Panel(Syntax(raw, "toml", word_wrap=True), title=plain(f"{t.id}  ({t.source})")))


def _prompt_model(cfg: Config) -> Any:
    r = cfg.reranker
    if r.backend == "fake":
        from llmrank.registry import llms

        return llms.create("fake", model=r.model, max_prompt_tokens=r.max_prompt_tokens)
    from llmrank.finetune.prompting import TokenizerPromptModel
    from llmrank.models.resolve import resolve_model

    source = str(r.options.get("tokenizer") or r.model)  # the openai backend's tokenizer option
    pmodel = TokenizerPromptModel.from_path(resolve_model(source), r.max_prompt_tokens)
    pmodel.model_id = source  # type: ignore[attr-defined]
    return pmodel


@app.command("render")
def render(
    name: str = typer.Argument(..., help="Template name, name@version or a .toml path."),
    user: str | None = typer.Option(None, "--user", "-u", help="User whose history fills the prompt."),
    items: list[str] | None = typer.Option(None, "--items", help="Candidate ids, comma-separated "
                                           "(default: the retriever's top --candidates)."),
    item: str | None = typer.Option(None, "--item", help="explain: the item to explain (default: the first candidate)."),
    text: str | None = typer.Option(None, "--text", "-t", help="Free-text request (the 'query' input)."),
    n_candidates: int = typer.Option(20, "--candidates", "-n", min=1, help="Candidates when retrieved."),
    var: list[str] | None = typer.Option(None, "--var", help="Other templates: input KEY=VALUE, text for a str input, JSON for the other types."),
    config: Path | None = ConfigOpt,
    dataset: str | None = DatasetOpt,
    data_dir: str | None = DataDirOpt,
    index: Path | None = IndexOpt,
    retriever: str | None = RetrieverOpt,
    backend: str | None = BackendOpt,
    model: str | None = ModelOpt,
    adapter: str | None = AdapterOpt,
    sets: list[str] | None = SetOpt,
    json_out: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Render a template as the model reads it (chat template applied), with its token count."""
    from llmrank.cli.rerank import split_ids

    setup_logging(verbose)
    tmpl = load_template(name)
    names = {i.name for i in tmpl.inputs}
    cfg = pipeline_config(config, dataset=dataset, data_dir=data_dir, index=index, retriever=retriever,
                          backend=backend, model=model, adapter=adapter, rerank=False, sets=sets)
    pmodel = _prompt_model(cfg)
    needs_candidates = bool(names & {"candidates", "item"})
    given = split_ids(items)
    retrieves = needs_candidates and not given and not item
    rec = build_recommender(cfg, quiet=json_out, retriever=None if retrieves else _no_retriever(cfg))
    ds = rec.dataset
    history = _known_history(ds, user)
    cands = _retrieved(rec, user, text, n_candidates) if retrieves else given
    _check_in_catalog(ds, [*cands, *([item] if item else [])])
    hist_items = [ds.items[i] for i in history if i in ds.items]
    cand_items = [ds.items[i] for i in cands]
    out: dict[str, Any] = {"template": tmpl.id, "user": user, "history_length": len(hist_items),
                           "tokenizer": getattr(pmodel, "model_id", cfg.reranker.model)}
    if {"candidates", "labels"} <= names:
        out |= _rank_prompt(cfg, pmodel, tmpl, hist_items, cand_items, text)
    elif {"item", "shared"} <= names:
        target = ds.items[item] if item else (cand_items[0] if cand_items else None)
        out |= _explain_prompt(cfg, pmodel, tmpl, hist_items, target, text)
    else:
        out |= _filled_prompt(pmodel, tmpl, names, ds, user, text, hist_items, var)
    if json_out:
        print_json(out)
        return
    _print_rendered(out, tmpl.id, user, text, len(hist_items), ds)


def _no_retriever(cfg: Config) -> Any:
    """With the candidates given, nothing needs embedding or indexing: a NoRetriever stands
    in, unless an index folder is configured (that retriever is loaded as saved)."""
    from llmrank.cli.rerank import NoRetriever

    return None if cfg.index.path else NoRetriever()


def _known_history(ds: Any, user: str | None) -> list[str]:
    """The user's history ([] without --user); an unknown user is an error, not an empty
    history, so a typo is not rendered as a cold-start prompt."""
    if user is not None and not ds.has_user(user):
        from llmrank.errors import UnknownUserError

        raise UnknownUserError(f"unknown user {user!r} in {ds.name}")
    return ds.history(user) if user is not None else []


def _retrieved(rec: Any, user: str | None, text: str | None, k: int) -> list[str]:
    """The recommender's top ``k`` for the user or the text, as the pipeline would pick them."""
    if user is None and not text:
        raise typer.BadParameter("give --user or --text (to retrieve candidates), or --items")
    return rec.recommend(user, text=text, k=k).item_ids()


def _check_in_catalog(ds: Any, ids: list[str]) -> None:
    """Every candidate and the --item must be catalog items (named in the error)."""
    unknown = [i for i in ids if i not in ds.items]
    if unknown:
        from llmrank.errors import UnknownItemError

        raise UnknownItemError(f"not in catalog {ds.name!r}: {', '.join(unknown[:10])}")


def _rank_prompt(cfg: Config, pmodel: Any, tmpl: PromptTemplate, hist_items: list[Any],
                 cand_items: list[Any], text: str | None) -> dict[str, Any]:
    """The rank prompt exactly as the reranker builds it (truncation included), with its
    label -> item map; with an adapter, the template and settings it was trained with. More
    candidates than the scorer's labels per prompt (reranker.max_labels) are split as the
    scorer splits them: every prompt of the first round is rendered (under ``windows``; the
    top-level fields are the first), and later rounds, which depend on the model's scores,
    are described, so no candidate is dropped silently."""
    from llmrank.rerank.prompt import RankPromptBuilder
    from llmrank.rerank.strategies import make_job

    out: dict[str, Any] = {}
    from llmrank.rerank.reranker import trained_builder

    # what the reranker renders for a tuned model (adapter or merged): its trained settings
    trained = trained_builder(pmodel, cfg.reranker) if tmpl.name == cfg.reranker.template else None
    if trained is not None:
        builder = trained
        out["template"] = builder.template.id
    else:
        builder = RankPromptBuilder(pmodel, tmpl, max_history=cfg.reranker.max_history,
                                    max_prompt_tokens=cfg.reranker.max_prompt_tokens)
    cands = list({c.item_id: c for c in cand_items}.values())  # the reranker dedupes too
    n_labels = min(cfg.reranker.max_labels, builder.max_labels)
    windows = make_job(len(cands), n_labels, cfg.reranker.strategy).pending() if len(cands) > 1 else [[0]]
    prompts = [_one_rank_prompt(builder, hist_items, [cands[i] for i in w], text) for w in windows]
    out |= prompts[0]
    if len(cands) > n_labels:
        out |= {"windows": prompts, "strategy": cfg.reranker.strategy, "labels_per_prompt": n_labels,
                "note": _rounds_note(len(cands), n_labels, cfg.reranker.strategy, len(prompts))}
    return out


def _one_rank_prompt(builder: Any, hist_items: list[Any], cands: list[Any], text: str | None) -> dict[str, Any]:
    """One built prompt: its text, token count, history kept and label -> item map."""
    rp = builder.build(hist_items, cands, query=text)
    return {"text": rp.text, "prompt_tokens": rp.prompt_tokens, "history_kept": rp.n_history,
            "labels": dict(zip(rp.labels, rp.item_ids, strict=True))}


def _rounds_note(n: int, n_labels: int, strategy: str, first_round: int) -> str:
    """What the scorer does with ``n`` candidates beyond the prompts shown."""
    return (f"{n} candidates, {n_labels} labels per prompt ({strategy}): shown are the {first_round} "
            "prompt(s) of the first round; the later rounds list the candidates that the model's scores "
            "keep, so they cannot be rendered without the model")


def _explain_prompt(cfg: Config, pmodel: Any, tmpl: PromptTemplate, hist_items: list[Any],
                    target: Any, text: str | None) -> dict[str, Any]:
    """The exact prompt the explainer sends for ``target`` (the --item or first candidate)."""
    from llmrank.explain.explainer import Explainer

    if target is None:
        raise typer.BadParameter("give --item ID (or candidates) to explain")
    prompt, n_tok = Explainer(pmodel, tmpl, max_new_tokens=cfg.explain.max_new_tokens)._prompt(
        hist_items, target, text)  # the exact prompt the explainer sends
    return {"text": prompt, "prompt_tokens": n_tok, "item": target.item_id}


def var_values(tmpl: PromptTemplate, pairs: list[str] | None) -> dict[str, Any]:
    """``--var KEY=VALUE`` read as the template declares KEY: a str input keeps the text
    (``--var user=7`` is the id "7", which JSON made the int 7 and the template refused; a
    JSON string such as '"7"' still reads as 7 without quotes); other types read JSON."""
    types = {i.name: i.type for i in tmpl.inputs}
    values = parse_key_values(pairs, "--var")
    for key, value in values.items():
        if types.get(key) == "str" and not isinstance(value, str):
            values[key] = _raw_var(pairs or [], key)
    return values


def _raw_var(pairs: list[str], key: str) -> str:
    """The text after '=' of the last ``--var key=...`` (the one parse_key_values kept)."""
    raw = [p.partition("=")[2] for p in pairs if p.partition("=")[0].strip() == key]
    return raw[-1]


def _filled_prompt(pmodel: Any, tmpl: PromptTemplate, names: set[str], ds: Any, user: str | None,
                   text: str | None, hist_items: list[Any], var: list[str] | None) -> dict[str, Any]:
    """Any other template: the inputs it declares that we know (catalog, user, query,
    history titles), then the --var values, which win."""
    values: dict[str, Any] = {"catalog": f"{ds.name}, {ds.n_items} items", "user": user, "query": text,
                              "history": [it.title for it in hist_items]}
    values = {k: v for k, v in values.items() if k in names and v is not None} | var_values(tmpl, var)
    prompt = tmpl.render(**values).to_text(pmodel)
    return {"text": prompt, "prompt_tokens": pmodel.count_tokens(prompt), "inputs": values}


def _print_rendered(out: dict[str, Any], template_id: str, user: str | None, text: str | None,
                    n_history: int, ds: Any) -> None:
    """Each prompt in a panel, then its token count and the label -> item map; with more
    candidates than labels, every first-round prompt and what happens next."""
    title = f"{template_id} for {'user ' + user if user else repr(text)}"
    prompts = out.get("windows") or [out]
    for k, one in enumerate(prompts, 1):
        suffix = f" (prompt {k} of {len(prompts)} in the first round)" if len(prompts) > 1 else ""
        console.print(Panel(Text(one["text"]), title=plain(title + suffix)))
        extra = f", history kept {one['history_kept']}/{n_history}" if "history_kept" in one else ""
        console.print(f"[bold]{one['prompt_tokens']}[/] " + plain(f"prompt tokens ({out['tokenizer']} tokenizer{extra})"),
                      highlight=False)
        for label, item_id in one.get("labels", {}).items():
            console.print(f"  {label} -> {item_id} {ds.items[item_id].title}", highlight=False, markup=False)
    if "note" in out:
        console.print(out["note"], highlight=False, markup=False)
