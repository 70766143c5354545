from __future__ import annotations

from llmrank.explain.misnamed import genre_called_a_title, misnamed_item

GENRES = ["Drama", "Comedy", "Children", "Sci-Fi"]
TITLES = ["Safe (1995)", "Dave (1993)", "Children of Men (2006)", "Lifeboat (1944)"]


def test_a_genre_called_a_film_is_found():
    assert genre_called_a_title('The user enjoyed the movie "Drama" and found it moving.', GENRES, TITLES) == "Drama"
    assert genre_called_a_title("They liked the film Comedy in the movie Batman.", GENRES, TITLES) == "Comedy"
    assert genre_called_a_title("the movie: 'Sci-Fi'", GENRES, TITLES) == "Sci-Fi"
    # a real SmolLM2 output (explain 1.1.0): a genre called a title
    assert genre_called_a_title('You liked the title "Drama" because it is moving.', GENRES, TITLES) == "Drama"


def test_genres_used_as_genres_and_titles_that_start_with_one_pass():
    for text in ("A gripping Drama like Dave (1993).",
                 "The user liked the movie Children of Men and this one is a Drama too.",
                 'They liked the movie "Children of Men".',
                 "A gripping drama film, Drama fans will love it.",
                 "the film drama unfolds slowly",
                 "You enjoy a title that combines comedy and drama."):  # lower case: a description, not a name
        assert genre_called_a_title(text, GENRES, TITLES) is None, text
    # a catalog with a film called "Drama" may call it a film
    assert genre_called_a_title('the movie "Drama"', GENRES, [*TITLES, "Drama (2010)"]) is None


def test_another_title_called_the_recommended_item_is_found():
    item = "Safe (1995)"
    assert misnamed_item('The user enjoyed the recommended item, "Dave (1993)" a lot.', item, TITLES) == "Dave (1993)"
    assert misnamed_item('The recommended movie, specifically "Dave", is a classic.', item, TITLES) == "Dave (1993)"
    assert misnamed_item("This recommendation is Lifeboat.", item, TITLES) == "Lifeboat (1944)"


def test_the_recommended_item_named_rightly_or_not_named_passes():
    item = "Safe (1995)"
    for text in ('The recommended item "Safe" is a Drama like Dave, which you enjoyed.',
                 "You will like the recommended movie because you liked Dave (1993).",
                 "The recommended item is a thriller; Dave (1993) was too."):
        assert misnamed_item(text, item, TITLES) is None, text
    # the item by an alias
    assert misnamed_item('The recommended film "Jet Li\'s Fearless" is an action film.',
                         "Jet Li's Fearless (Huo Yuan Jia) (2006)", TITLES) is None
