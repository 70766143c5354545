from __future__ import annotations

from llmrank.explain.titles import aliases, mentions, normalize_text, strip_year, title_pattern


def test_normalize_and_strip_year():
    assert normalize_text("  Amélie  (2001)!") == "amélie 2001"
    assert strip_year("Heat (1995)") == "Heat" and strip_year("Heat") == "Heat"


def test_a_title_is_matched_with_or_without_year_and_punctuation():
    pattern = title_pattern("Monsters, Inc. (2001)")
    assert pattern is not None and pattern.search("you liked monsters inc a lot")
    assert title_pattern("(1995)") is None  # nothing but a year
    assert not title_pattern("Heat (1995)").search("Heated")  # whole words only


def test_overlapping_mentions_keep_the_longer_title():
    text = "Heat and Dust, Scary Movie 4 and Heat."
    found = mentions(text, ["Heat (1995)", "Heat and Dust (1983)", "Scary Movie (2000)",
                            "Scary Movie 4 (2006)", "Dust (1999)"])
    assert [t for _, _, t in found] == ["Heat and Dust (1983)", "Scary Movie 4 (2006)", "Heat (1995)"]
    assert [text[a:b] for a, b, _ in found] == ["Heat and Dust", "Scary Movie 4", "Heat"]


def test_aliases_cover_alternate_titles_and_trailing_articles():
    assert aliases("Heat (1995)") == ("Heat",)
    assert aliases("Jet Li's Fearless (Huo Yuan Jia) (2006)") == (
        "Jet Li's Fearless (Huo Yuan Jia)", "Jet Li's Fearless", "Huo Yuan Jia")
    assert "The Shawshank Redemption" in aliases("Shawshank Redemption, The (1994)")
    assert "The Boy in the Striped Pyjamas" in aliases(
        "The Boy in the Striped Pajamas (Boy in the Striped Pyjamas, The) (2008)")
    assert aliases("Seven (a.k.a. Se7en) (1995)")[1:] == ("Seven", "Se7en")
    assert aliases("Monsters, Inc. (2001)") == ("Monsters, Inc.",)  # no article to move
    assert aliases("(500) Days of Summer (2009)") == ("(500) Days of Summer",)


def test_a_title_is_mentioned_by_its_main_title_alone():
    found = mentions('The user enjoyed the movie "Jet Li\'s Fearless" (2006).',
                     ["Jet Li's Fearless (Huo Yuan Jia) (2006)"])
    assert [t for _, _, t in found] == ["Jet Li's Fearless (Huo Yuan Jia) (2006)"]


def test_cited_mentions_are_names_not_prose():
    from llmrank.explain.titles import cited

    titles = ["It (2017)", "Up (2009)", "9 (2009)", "eXistenZ (1999)", "Heat (1995)"]
    text = "You will love it. It is scary, it keeps you up, rated 9 of 10, like eXistenZ and Heat."
    assert [t for _, _, t in cited(text, titles)] == ["eXistenZ (1999)", "Heat (1995)"]
    text = 'Like "It" and Up, and 9 (2009). It (2017) too.'
    assert [t for _, _, t in cited(text, titles)] == ["It (2017)", "Up (2009)", "9 (2009)", "It (2017)"]


def test_a_name_two_titles_share_is_the_first_given_in_every_process():
    """mentions() iterated a set: which of 'Psycho (1960)' and 'Psycho (1998)' a mention was
    read as (and so the reasons naming it) changed with the process's hash seed."""
    import os
    import subprocess
    import sys

    code = ("from llmrank.explain.titles import mentions;"
            "print(mentions('You liked Psycho.', ['Psycho (1960)', 'Psycho (1998)'])[0][2])")
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout.strip()
            for seed in range(6)}
    assert seen == {"Psycho (1960)"}
