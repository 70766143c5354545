from __future__ import annotations

from llmrank.records import Filters, Item
from llmrank.retrieve.filters import compile_filters

ITEMS = {
    "1": Item("1", "Alien", 1979, ("Horror", "Sci-Fi"), attributes={"country": "US"}),
    "2": Item("2", "Amelie", 2001, ("Comedy", "Romance"), tags=("paris",), attributes={"country": "FR"}),
    "3": Item("3", "Heat", 1995, ("Crime",)),
}


def kept(filters: Filters) -> list[str]:
    keep = compile_filters(filters, ITEMS)
    assert keep is not None
    return [i for i in [*ITEMS, "unknown"] if keep(i)]


def test_no_filters_means_no_predicate():
    assert compile_filters(None, ITEMS) is None
    assert compile_filters(Filters(), ITEMS) is None
    assert compile_filters(Filters(exclude_seen=False), ITEMS) is None


def test_allow_and_deny():
    assert kept(Filters(allow=frozenset({"1", "3", "unknown"}))) == ["1", "3", "unknown"]
    assert kept(Filters(deny=frozenset({"2"}))) == ["1", "3", "unknown"]
    assert kept(Filters(allow=frozenset({"1", "2"}), deny=frozenset({"2"}))) == ["1"]


def test_attribute_filters_case_insensitive_or_within_and_across():
    assert kept(Filters(attributes={"genre": frozenset({"sci-fi"})})) == ["1"]
    assert kept(Filters(attributes={"genres": frozenset({"Crime", "Comedy"})})) == ["2", "3"]
    assert kept(Filters(attributes={"tag": frozenset({"PARIS"})})) == ["2"]
    assert kept(Filters(attributes={"year": frozenset({"1995"})})) == ["3"]
    assert kept(Filters(attributes={"country": frozenset({"fr", "us"}),
                                    "genre": frozenset({"romance"})})) == ["2"]
    assert kept(Filters(attributes={"country": frozenset({"DE"})})) == []  # unknown item fails too
