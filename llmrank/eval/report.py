"""Files a run leaves behind: per-user run files (JSON lines, plus TREC run/qrels that any
TREC tool such as ranx reads), metrics.json with full provenance, and a markdown table.

TREC run files carry ``score = L + 1 - rank`` rather than raw scores so that every tool
reproduces llmrank's exact order, tie-breaking included; raw scores are in the JSON lines."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.dataset import Dataset
from llmrank.eval.results import RankerResult
from llmrank.eval.stats import CI


def write_run_jsonl(path: Path, result: RankerResult, dataset: Dataset,
                    targets: Sequence[int] | np.ndarray) -> None:
    """One line per user: user id, target id, target rank, ranked item ids and scores."""
    ids = dataset.item_ids
    out = result.outcome
    with path.open("w", encoding="utf-8") as f:
        for i, u in enumerate(out.users):
            items = [int(c) for c in out.lists[i] if c >= 0]
            rank = float(out.ranks[i])
            rec = {
                "user": dataset.user_ids[int(u)], "target": ids[int(targets[i])],
                "rank": rank if math.isfinite(rank) else None,
                "target_position": int(out.target_pos[i]),
                "items": [ids[c] for c in items],
                "scores": [None if math.isnan(s) else round(float(s), 6)  # NaN: unscored
                           for s in out.list_scores[i][: len(items)]],
                "invalid": bool(out.invalid[i]),
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def write_trec(run_path: Path, qrels_path: Path | None, result: RankerResult, dataset: Dataset,
               targets: Sequence[int] | np.ndarray) -> None:
    """TREC run (``qid Q0 docid rank score tag``) and, if asked, qrels (``qid 0 docid 1``)."""
    out = result.outcome
    tag = result.label.replace(" ", "_")
    with run_path.open("w", encoding="utf-8") as f:
        for i, u in enumerate(out.users):
            items = [int(c) for c in out.lists[i] if c >= 0]
            qid = dataset.user_ids[int(u)]
            for r, c in enumerate(items, start=1):
                f.write(f"{qid} Q0 {dataset.item_ids[c]} {r} {len(items) + 1 - r} {tag}\n")
    if qrels_path is not None:
        with qrels_path.open("w", encoding="utf-8") as f:
            for i, u in enumerate(out.users):
                f.write(f"{dataset.user_ids[int(u)]} 0 {dataset.item_ids[int(targets[i])]} 1\n")


def fmt_ci(ci: CI | None, digits: int = 4) -> str:
    if ci is None or math.isnan(ci.mean):
        return "-"
    return f"{ci.mean:.{digits}f} [{ci.low:.{digits}f}, {ci.high:.{digits}f}]"


def headline_metrics(protocol: str, ks: Sequence[int]) -> list[str]:
    """The columns a protocol's table shows (README: full ranking -> R/N/MRR@5,10,20;
    candidates -> NDCG@1/5/10/20)."""
    if protocol == "candidates":
        return [f"ndcg@{k}" for k in ks] + [f"recall@{k}" for k in ks if k in (1, 5)]
    big = [k for k in ks if k >= 5] or list(ks)
    return [f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in big]


def markdown_table(results: Sequence[RankerResult], header: dict[str, Any],
                   reference: str | None = None) -> str:
    """Metrics with 95% CIs, one row per ranker; paired p-values against ``reference``."""
    if not results:
        return "(no results)\n"
    protocol = results[0].protocol
    ks = sorted({int(k.split("@")[1]) for k in results[0].summary})
    cols = headline_metrics(protocol, ks)
    lines = [f"### {header.get('name', 'eval')}: {protocol} protocol, stage {results[0].stage}", ""]
    lines += [f"- {k}: {v}" for k, v in header.items() if k != "name"]
    lines += ["", "Each cell: mean [95% bootstrap CI over users].", ""]
    lines.append("| ranker | users | " + " | ".join(cols) + " |")
    lines.append("|---|---:|" + "---:|" * len(cols))
    for r in results:
        cells = [fmt_ci(r.summary.get(c)) for c in cols]
        lines.append(f"| {r.label} | {r.n_users} | " + " | ".join(cells) + " |")
    if protocol == "retriever":
        lines += ["", "Users whose target was retrieved:", ""]
        lines.append("| ranker | retrieved rate | " + " | ".join(cols) + " |")
        lines.append("|---|---:|" + "---:|" * len(cols))
        for r in results:
            cells = [fmt_ci(r.retrieved_summary.get(c)) for c in cols]
            lines.append(f"| {r.label} | {r.retrieved_rate:.4f} | " + " | ".join(cells) + " |")
    lines += _beyond_table(results) + _paired_table(results, reference)
    return "\n".join(lines) + "\n"


def _beyond_table(results: Sequence[RankerResult]) -> list[str]:
    names = sorted({n for r in results for n in r.beyond})
    if not names:
        return []
    out = ["", "Beyond accuracy (coverage: share of the catalog in any top list):", ""]
    out.append("| ranker | coverage | " + " | ".join(names) + " | invalid rate | missing rate |")
    out.append("|---|---:|" + "---:|" * len(names) + "---:|---:|")
    for r in results:
        cells = [fmt_ci(r.beyond.get(n), 3) for n in names]
        out.append(f"| {r.label} | {r.coverage:.4f} | " + " | ".join(cells)
                   + f" | {r.invalid_rate:.4f} | {r.missing_rate:.4f} |")
    return out


def _paired_table(results: Sequence[RankerResult], reference: str | None) -> list[str]:
    rows = [r for r in results if r.paired]
    if not rows or reference is None:
        return []
    metric = "ndcg@10" if "ndcg@10" in rows[0].paired else next(iter(rows[0].paired))
    method = rows[0].paired[metric].method
    out = ["", f"Paired {method} test against `{reference}` on {metric} (same users):", ""]
    out.append("| ranker | diff (mean a - b) [95% CI] | p-value |")
    out.append("|---|---:|---:|")
    for r in rows:
        p = r.paired[metric]
        out.append(f"| {r.label} | {fmt_ci(p.diff_ci)} | {p.p_value:.4g} |")
    return out


def write_metrics_json(path: Path, results: Sequence[RankerResult], meta: dict[str, Any]) -> None:
    payload = _finite({**meta, "results": {r.label: r.to_dict() for r in results}})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default, allow_nan=False),
                   encoding="utf-8")
    tmp.replace(path)


def _finite(obj: Any) -> Any:
    """Strict JSON: NaN/inf (an empty subset, a miss) become null."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _finite(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json_default(obj: Any) -> Any:
    return str(obj)
