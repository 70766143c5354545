"""The driver side of the ray engine with a stand-in for ``ray`` (no Ray needed): what it
hands to Ray Data and how it writes what comes back."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from batch_fakes import CFG, GOOD, read_out, write_requests

from llmrank.batch.local import LocalBatchEngine
from llmrank.batch.ray_engine import RayBatchEngine


class FakeDataset:
    """from_items -> map_batches(actor class) -> iter_batches, run in process."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows, self.worker, self.batch_size = rows, None, 1

    def map_batches(self, cls, *, fn_constructor_kwargs, batch_size, **_: Any) -> FakeDataset:
        self.worker, self.batch_size = cls(**fn_constructor_kwargs), batch_size
        return self

    def iter_batches(self, *, batch_size: int, batch_format: str):
        for i in range(0, len(self.rows), self.batch_size):
            chunk = self.rows[i:i + self.batch_size]
            yield self.worker({"line": [r["line"] for r in chunk], "request": [r["request"] for r in chunk]})


def fake_ray(datasets: list[FakeDataset]) -> Any:
    def from_items(rows):
        datasets.append(FakeDataset(list(rows)))
        return datasets[-1]

    options = SimpleNamespace(preserve_order=False)
    context = SimpleNamespace(execution_options=options)
    data = SimpleNamespace(from_items=from_items, ActorPoolStrategy=lambda size: None,
                           DataContext=SimpleNamespace(get_current=lambda: context))
    return SimpleNamespace(data=data, shutdown=lambda: None)


def test_the_input_reaches_ray_in_windows_not_whole(rec, tmp_path, monkeypatch):
    """The driver read every pending job into one list for ray.data.from_items: a large
    input sat whole in the driver's memory (the local engine streams it)."""
    datasets: list[FakeDataset] = []
    monkeypatch.setattr(RayBatchEngine, "_init_ray", lambda self: fake_ray(datasets))
    src = write_requests(tmp_path / "req.jsonl", [*GOOD, "{bad"])
    engine = RayBatchEngine(config=CFG, recommender_factory=lambda: rec, batch_size=2, window=3)
    report = engine.run(src, tmp_path / "ray.jsonl")
    assert [len(ds.rows) for ds in datasets] == [3, 3, 2]
    assert report.done == len(GOOD) and [f.line for f in report.failed] == [9]
    LocalBatchEngine(rec).run(src, tmp_path / "local.jsonl")
    assert read_out(tmp_path / "ray.jsonl") == read_out(tmp_path / "local.jsonl")
    lines = [r["line"] for r in map(json.loads, (tmp_path / "ray.jsonl").read_text().splitlines())]
    assert lines == sorted(lines)
