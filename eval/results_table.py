"""Print the markdown tables of eval/RESULTS.md section 3 from finished runs' metrics.json
(numbers are never typed by hand).

    python eval/results_table.py ml-small-5core-full ml-small-5core-cand20 ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
FULL = [f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in (5, 10, 20)]
CAND = [f"ndcg@{k}" for k in (1, 5, 10, 20)]


def cell(ci: dict[str, Any] | None) -> str:
    if not ci or ci.get("mean") is None:
        return "-"
    return f"{ci['mean']:.4f} ({ci['low']:.3f}-{ci['high']:.3f})"


def table(name: str) -> str:
    meta = json.loads((OUT / name / "metrics.json").read_text())
    proto = meta["config"]["protocol"]["name"]
    cols = CAND if proto == "candidates" else FULL
    pre = meta["preprocessing"]
    ref = meta["config"]["run"].get("reference")
    lines = [
        f"**{name}** ({proto}; {pre['dataset']}, kcore={pre['kcore']}, min_rating="
        f"{pre['min_rating']}: {pre['users']} users, {pre['items']} items, "
        f"{pre['interactions']} interactions; seed {meta['seed']}; commit "
        f"{(meta['git'].get('commit') or '?')[:9]}; run {meta['finished']})",
        "",
        "| ranker | " + " | ".join(cols) + f" | p vs {ref} (ndcg@10) |",
        "|---|" + "---:|" * (len(cols) + 1),
    ]
    for label, res in meta["results"].items():
        p = res["paired_vs_reference"].get("ndcg@10")
        pv = "ref" if label == ref else (f"{p['p_value']:.2g}" if p else "-")
        lines.append(f"| {label} | " + " | ".join(cell(res["metrics"].get(c)) for c in cols)
                     + f" | {pv} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", help="run names under eval/out/")
    for name in ap.parse_args().runs:
        print(table(name))


if __name__ == "__main__":
    main()
