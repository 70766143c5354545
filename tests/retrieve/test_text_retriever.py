from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from _text_fixtures import tiny_dataset

from llmrank.config import load_config
from llmrank.errors import EmptyHistoryError, UnknownItemError
from llmrank.records import Candidate, Filters, Item
from llmrank.retrieve.base import PersistentRetriever
from llmrank.retrieve.text import TextRetriever


@pytest.fixture()
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMRANK_HOME", str(tmp_path))
    return load_config({"embedder": {"backend": "hashing"}, "retriever": {"recency_half_life": 1.0}})


@pytest.fixture()
def retriever(cfg):
    return TextRetriever.build(tiny_dataset(), cfg)


def genre(r: TextRetriever, c: Candidate) -> str:
    return r.items[c.item_id].genres[0]


def test_is_a_persistent_retriever(retriever):
    assert isinstance(retriever, PersistentRetriever)
    assert retriever.index.kind == "flat" and len(retriever.index) == 80


def test_history_query_excludes_seen_and_follows_taste(retriever):
    ds = tiny_dataset()
    hist = ds.history("u1")
    got = retriever.retrieve(history=hist, k=10)
    assert len(got) == 10 and not {c.item_id for c in got} & set(hist)
    assert all(genre(retriever, c) == "Horror" for c in got)
    scores = [c.score for c in got]
    assert scores == sorted(scores, reverse=True) and got[0].source == "text"
    with_seen = retriever.retrieve(history=hist, k=3, filters=Filters(exclude_seen=False))
    assert {c.item_id for c in with_seen} & set(hist)


def test_recency_weighting_favours_latest_item(retriever, cfg):
    hist = tiny_dataset().history("u2")  # three comedies, then a documentary
    assert hist[-1] == "i3" and retriever.items["i3"].genres == ("Documentary",)
    recent = retriever.retrieve(history=hist, k=1)[0]
    assert genre(retriever, recent) == "Documentary"  # half-life 1: the latest item dominates
    flat = TextRetriever(retriever.index, retriever.items, embedder=retriever.embedder,
                         recency_half_life=math.inf)
    assert genre(flat, flat.retrieve(history=hist, k=1)[0]) == "Comedy"  # plain mean


def test_filters_applied_inside_retrieval(retriever):
    hist = tiny_dataset().history("u1")
    f = Filters(attributes={"genre": frozenset({"western"})}, deny=frozenset({"i2"}))
    got = retriever.retrieve(history=hist, k=15, filters=f)
    assert len(got) == 15  # 20 westerns minus the denied one: k survive the filter
    assert all(genre(retriever, c) == "Western" and c.item_id != "i2" for c in got)
    allow = Filters(allow=frozenset({"i0", "i1", "i2"}))
    assert {c.item_id for c in retriever.retrieve(history=hist, k=10, filters=allow)} == {"i1", "i2"}


def test_unknown_ids_skipped_with_warning(retriever, caplog):
    with caplog.at_level(logging.WARNING):
        got = retriever.retrieve(history=["nope", "i0", "i4"], k=5)
    assert "unknown item id" in caplog.text and "'nope'" in caplog.text
    assert got == retriever.retrieve(history=["i0", "i4"], k=5)


@pytest.mark.parametrize("history", [None, [], ["nope", "also-nope"]])
def test_empty_history_without_text_raises(retriever, history):
    with pytest.raises(EmptyHistoryError):
        retriever.retrieve(history=history, k=5)


def test_free_text_and_blend(retriever):
    got = retriever.retrieve(text="cowboy sheriff", k=5)
    assert all(genre(retriever, c) == "Western" for c in got)
    hist = tiny_dataset().history("u1")
    blend = retriever.retrieve(history=hist, text="cowboy sheriff", k=20)
    kinds = {genre(retriever, c) for c in blend}
    assert {"Horror", "Western"} <= kinds
    assert not {c.item_id for c in blend} & set(hist)


def test_retrieve_many_matches_single(retriever):
    ds = tiny_dataset()
    hists = [ds.history("u1"), ds.history("u2")]
    many = retriever.retrieve_many(hists, k=7)
    assert many == [retriever.retrieve(history=h, k=7) for h in hists]


def test_similar_items_and_cold_start_add(retriever):
    sims = retriever.similar_items("i0", k=5)
    assert "i0" not in {c.item_id for c in sims}
    assert all(genre(retriever, c) == "Horror" for c in sims)
    with pytest.raises(UnknownItemError):
        retriever.similar_items("zzz")
    retriever.add_items([Item("new", "cowboy desert sheriff showdown", 2024, ("Western",))])
    assert retriever.retrieve(text="sheriff showdown", k=1)[0].item_id == "new"
    assert retriever.remove_items(["new"]) == 1 and "new" not in retriever.items


def test_score_all_agrees_with_index_search(retriever):
    q = retriever.query_vector(tiny_dataset().history("u1"))[None, :]
    ids, scores = retriever.score_all(q)
    top = retriever.index.search(q, 5)[0]
    np.testing.assert_allclose([s for _, s in top], np.sort(scores[0])[::-1][:5], rtol=1e-5)
    position = {iid: j for j, iid in enumerate(ids)}
    np.testing.assert_allclose([scores[0][position[i]] for i, _ in top], [s for _, s in top],
                               rtol=1e-5)
