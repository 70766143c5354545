"""Item cold start: a random 20% of the catalog is hidden from training (every interaction
with those items is removed from what the models learn from), then each user's test target
is ranked over the whole catalog (full ranking, seen items excluded, LlamaRec 5-core data).

Retrievers: ``sequential`` (a pure ID model has no vector for an item it never saw, so cold
items are not in its index), ``text`` (the text retriever: recency-weighted mean of the
history's item-text embeddings), ``fused`` (the same sequential model; cold items placed by
their projected text, placement tuned on pseudo-cold items), ``fused-untuned`` (the same
without that tuning: the plain ridge projection, as before the cold placement existed) and
``fused-live`` (built without the cold items, which are then added to the live index from
their text alone; it must equal ``fused``). ``--fixed-cold A,O,G`` adds a fused retriever
with that cold placement fixed (scale, centred offset in spread units, text scale; e.g. an
operating point read off the validation trade-off) named ``fused(A,O,G)``;
``--cold-recall-floor F`` adds the placement with the best validation NDCG@10 among those
whose pseudo-cold Recall@100 is at least F (the validation trade-off table, also written).

    nice -n 10 python eval/bench_sequential_cold.py --config eval/configs/lru.json \
        --out eval/out/sequential_cold_ml-latest-small_5core
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sequential_lib import (
    DATA_ROOT,
    fmt,
    load_split,
    paired,
    read_config,
    retrieval_ranks,
    summarize,
    test_queries,
)

log = logging.getLogger("bench_sequential_cold")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--data-root", type=Path, default=DATA_ROOT)
    ap.add_argument("--kcore", type=int, default=5)
    ap.add_argument("--config", required=True)
    ap.add_argument("--cold-fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedder", default="sentence-transformers")
    ap.add_argument("--half-life", type=float, default=1.0,
                    help="text query half-life for the text and fused retrievers (1: best on "
                         "validation for both, sections 1 and 4)")
    ap.add_argument("--fixed-cold", action="append", default=[], metavar="A,O,G",
                    help="also evaluate the fused retriever with this cold placement fixed")
    ap.add_argument("--cold-recall-floor", action="append", type=float, default=[],
                    help="also evaluate the best-NDCG placement with validation pseudo-cold "
                         "Recall@100 >= this")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    from llmrank.baselines.retriever import visible_dataset
    from llmrank.config import load_config
    from llmrank.retrieve.fused import FusedRetriever
    from llmrank.retrieve.fusion import FusionConfig
    from llmrank.retrieve.sequential.model import SequentialModel
    from llmrank.retrieve.sequential.retriever import SequentialRetriever, index_vectors
    from llmrank.retrieve.sequential.train import holdout_split, train_sequential
    from llmrank.retrieve.text import TextRetriever

    args.out.mkdir(parents=True, exist_ok=True)
    ds, split = load_split(args.dataset, args.kcore, args.data_root)
    rng = np.random.default_rng(args.seed)
    cold_codes = np.sort(rng.permutation(ds.n_items)[: int(args.cold_fraction * ds.n_items)])
    cold = {ds.item_ids[c] for c in cold_codes}
    visible = visible_dataset(split, "test")
    keep = ~np.isin(visible.interactions.item, cold_codes)
    train_ds = visible.subset(keep, name=f"{ds.name}-cold{args.cold_fraction}", drop_unused=False)
    cfg = load_config({"embedder": {"backend": args.embedder},
                       "retriever": {"recency_half_life": args.half_life,
                                     "options": {"fusion": {"half_life": args.half_life}}}})

    scfg = read_config(args.config, threads=args.threads)
    folder = args.out / "model"
    info_path = folder / "training.json"
    if info_path.is_file() and json.loads(info_path.read_text())["config"] == scfg.to_dict():
        model = SequentialModel.load(folder, device=scfg.device)
        train_s = json.loads(info_path.read_text())["train_seconds"]
    else:
        result = train_sequential(holdout_split(train_ds), scfg)
        model, train_s = result.model, round(result.seconds, 1)
        model.save(folder)
        info_path.write_text(json.dumps({"config": scfg.to_dict(), "train_seconds": train_s,
                                         "best_epoch": result.best_epoch}))

    warm_ids = [i for i in ds.item_ids if i not in cold]
    seq = SequentialRetriever(model, index_vectors(
        warm_ids, model.item_vectors()[model.codes(warm_ids)], cfg), ds.items)
    t0 = time.perf_counter()
    text = TextRetriever.build(ds, cfg)
    text_s = time.perf_counter() - t0
    from llmrank.retrieve.fused import embed_catalog

    text_vectors = embed_catalog(text.embedder, [ds.items[i] for i in ds.item_ids])
    t0 = time.perf_counter()
    fused = FusedRetriever.build(train_ds, cfg, model=model, text_vectors=text_vectors,
                                 embedder=text.embedder)
    fused_s = time.perf_counter() - t0
    untuned = FusedRetriever.build(train_ds, cfg, model=model, text_vectors=text_vectors,
                                   embedder=text.embedder,
                                   fusion=FusionConfig(half_life=args.half_life, pseudo_cold=0.0))
    fixed = {}
    specs = list(args.fixed_cold)
    for f in args.cold_recall_floor:
        try:
            specs.append(floor_point(fused.report["cold"], f))
        except SystemExit as exc:  # a floor this dataset cannot reach: report, keep the rest
            log.warning("%s; skipped", exc)
    for spec in specs:
        a, o, g = (float(x) for x in spec.split(","))
        fixed[f"fused({spec})"] = FusedRetriever.build(
            train_ds, cfg, model=model, text_vectors=text_vectors, embedder=text.embedder,
            fusion=FusionConfig(half_life=args.half_life, cold_scale=a, cold_offset=o,
                                cold_text_scale=g))
    # live: the same fusion, but the cold items arrive later, from their text alone
    live = FusedRetriever.build(train_ds, cfg, model=model, text_vectors=text_vectors,
                                embedder=text.embedder)
    cold_ids = [ds.item_ids[c] for c in cold_codes]  # the order of text_vectors[cold_codes]
    live.remove_items(cold_ids)
    live.add_items([ds.items[i] for i in cold_ids], text_vectors=text_vectors[cold_codes])

    hists, targets = test_queries(split)
    is_cold = np.array([t in cold for t in targets])
    ranks = {}
    for name, retr in (("sequential", seq), ("text", text), ("fused", fused),
                       ("fused-untuned", untuned), ("fused-live", live), *fixed.items()):
        ranks[name], _ = retrieval_ranks(retr, hists, targets)
        np.save(args.out / f"ranks_{name}.npy", ranks[name])
    groups = {"cold targets": is_cold, "warm targets": ~is_cold,
              "all": np.ones_like(is_cold)}
    results: dict[str, dict] = {}
    for group, mask in groups.items():
        results[group] = {name: summarize(r[mask]) for name, r in ranks.items()}
        results[group]["paired fused vs text"] = paired(ranks["fused"][mask], ranks["text"][mask])
        results[group]["paired fused vs sequential"] = paired(ranks["fused"][mask],
                                                              ranks["sequential"][mask])
        results[group]["paired fused vs fused-untuned"] = paired(ranks["fused"][mask],
                                                                 ranks["fused-untuned"][mask])
        for name in fixed:
            for ref in ("text", "fused-untuned"):
                results[group][f"paired {name} vs {ref}"] = paired(ranks[name][mask],
                                                                    ranks[ref][mask])
    meta = {"dataset": ds.name, "cold_items": len(cold), "cold_fraction": args.cold_fraction,
            "users": {g: int(m.sum()) for g, m in groups.items()},
            "fusion": fused.report, "fusion_untuned": untuned.report,
            "fusion_fixed": {n: r.report for n, r in fixed.items()}, "train_seconds": train_s,
            "half_life": args.half_life, "text_build_seconds": round(text_s, 1),
            "fused_build_seconds": round(fused_s, 1),
            "live_equals_fused": bool(np.array_equal(ranks["fused"], ranks["fused-live"])),
            "command": "python " + " ".join(sys.argv), "machine": platform.platform(),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    md = markdown(meta, results)
    (args.out / "table.md").write_text(md)
    print(md)


def floor_point(cold_report: dict, floor: float) -> str:
    """'A,O,G' of the grid point with the best validation NDCG@10 among those whose
    pseudo-cold Recall@100 reaches ``floor``."""
    grid = cold_report["grid"]
    ok = {k: v for k, v in grid.items() if v[2] >= floor}
    if not ok:
        raise SystemExit(f"no cold placement reaches pseudo-cold Recall@100 {floor}")
    key = max(ok, key=lambda k: ok[k][0])
    return ",".join(part.split("=")[1] for part in key.split(","))


def tradeoff(cold_report: dict, floors: tuple[float, ...] = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3)
             ) -> str:
    """Validation trade-off: best all-user NDCG@10 at each pseudo-cold Recall@100 floor."""
    cols = cold_report["grid_columns"]
    lines = ["Validation trade-off (pseudo-cold items; best NDCG@10 per floor):", "",
             "| pseudo-cold R@100 >= | placement a,o,g | " + " | ".join(cols) + " |",
             "|---" * (len(cols) + 2) + "|"]
    u = cold_report["valid_untuned"]
    for f in floors:
        try:
            spec = floor_point(cold_report, f)
        except SystemExit:
            continue
        key = "scale={},offset={},text_scale={}".format(*spec.split(","))
        lines.append(f"| {f} | {spec} | " + " | ".join(
            f"{v:.4f}" for v in cold_report["grid"][key]) + " |")
    lines.append(f"| untuned | 1,0,1 | {u['ndcg@10']:.4f} | | {u['pseudo_cold_recall@100']:.4f} "
                 "| | |")
    return "\n".join(lines) + "\n"


def markdown(meta: dict, results: dict) -> str:
    cols = ["ndcg@10", "recall@10", "recall@20", "recall@50", "recall@100"]
    lines = [f"{meta['dataset']}: {meta['cold_items']} cold items ({meta['cold_fraction']:.0%}); "
             f"users {meta['users']}; fused-live == fused: {meta['live_equals_fused']}", ""]
    for group, res in results.items():
        lines += [f"**{group}** ({meta['users'][group]} users)", "",
                  "| retriever | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name, m in res.items():
            if not name.startswith("paired"):
                lines.append(f"| {name} | " + " | ".join(fmt(m[c]) for c in cols) + " |")
        for name in [k for k in res if k.startswith("paired")]:
            v = res[name]["ndcg@10"]
            r20 = res[name]["recall@20"]
            lines.append(f"\n{name}: NDCG@10 {_diff(v)}, Recall@20 {_diff(r20)}")
        lines.append("")
    return "\n".join(lines) + "\n" + tradeoff(meta["fusion"]["cold"])


def _diff(v: dict) -> str:
    ci = v["diff_ci"]
    return f"{v['diff']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}] (p={v['p_value']:.4f})"


if __name__ == "__main__":
    main()
