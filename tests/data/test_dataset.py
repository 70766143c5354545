"""Dataset helpers not covered by the loader tests."""

from __future__ import annotations


def test_genre_vocabulary_is_every_genre_once(ml100k, ml_small):
    vocab = ml100k.genre_vocabulary()
    assert len(vocab) == len(set(vocab)) == 18  # ml-100k's 19 flags, 'unknown' is not a genre
    assert {"Film-Noir", "Children's", "Sci-Fi"} <= set(vocab)
    small = ml_small.genre_vocabulary()
    assert "IMAX" in small and "(no genres listed)" not in small
    assert set(small) == {g for it in ml_small.items.values() for g in it.genres}
