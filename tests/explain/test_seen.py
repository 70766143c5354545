from __future__ import annotations

import pytest

from llmrank.explain.seen import recommended_item_claimed_seen, unseen_claim
from llmrank.explain.validate import validate_explanation

HISTORY = ["Toy Story (1995)", "Heat (1995)", "Heat and Dust (1983)"]
OTHERS = ["Ronin (1998)", "Chasing Aurora (2012)", "It (2017)", "Casino (1995)"]


@pytest.mark.parametrize(("text", "claimed"), [
    ('The user enjoyed the documentary "Chasing Aurora" and found it captivating.',
     "Chasing Aurora (2012)"),  # a real SmolLM2 output about the item it recommends
    ("You liked Heat and Ronin, two tense thrillers.", "Ronin (1998)"),
    ("You watched Heat, Casino and Ronin last year.", "Casino (1995)"),  # the first one
    ("You watched Heat, Toy Story and Ronin last year.", "Ronin (1998)"),
    ("You watched Heat, Ronin and Toy Story.", "Ronin (1998)"),
    ("The user has seen Ronin (1998) twice.", "Ronin (1998)"),
    ('The user liked: "Chasing Aurora (2012)."', "Chasing Aurora (2012)"),  # a real SmolLM2 output (explain 1.4.0)
    ('You liked "Heat" and "Toy Story": "Ronin" is also a thriller.', None),  # the template sentence
    ("You are a big fan of Casino, so this fits.", "Casino (1995)"),
    ("Since you loved Toy Story, Ronin brings the same energy.", None),  # new clause
    ("Because you enjoyed Heat, you will love Ronin.", None),
    ("You liked Heat and Ronin is just as tense.", None),
    ("You watched Heat, and Ronin is just as tense.", None),  # a comma, then a new clause
    ('You enjoy the movie "Ronin" and its car chases.', "Ronin (1998)"),  # real (explain 1.1.0)
    ('You like "Ronin" because it shares crime with the titles you liked.', None),  # a prediction
    ('You like the recommended title "Ronin (1998)" because it shares crime with Heat.', None),
    ("You may enjoy Ronin, a thriller like Heat.", None),  # the recommendation itself
    ("If you like Heat, you'd love Ronin.", None),
    ("You enjoyed crime films such as Ronin.", None),  # 'as': not said to be seen
    ("If you have not seen Ronin, it is a tense thriller like Heat.", None),
    ("You haven't watched Casino yet, and it suits your taste.", None),
    ("You enjoyed Heat and Dust, a slow drama.", None),  # a history title containing 'Heat'
    ("You liked it, as Ronin is a tense thriller.", None),  # 'it' is not the film 'It'
    ("You enjoyed Toy Story. Ronin is another classic.", None),  # another sentence
])
def test_only_history_titles_may_be_said_to_be_seen(text, claimed):
    v = validate_explanation(text, [*HISTORY, *OTHERS], history_titles=HISTORY)
    if claimed is None:  # (an ungrounded text may fail for that: only the seen checks count here)
        assert v.ok or v.reason == "cites nothing from the history or the item", v.reason
    else:
        assert not v.ok and v.reason == f"says the user saw {claimed!r}, which is not in their history"
    assert validate_explanation(text, [*HISTORY, *OTHERS]).ok  # checked only with a history


@pytest.mark.parametrize(("text", "claimed"), [  # real SmolLM2 outputs (eval/bench_explain.py)
    ('The user enjoyed the movie "Scary Movie 4" and found it great.', "Scary Movie 4 (2006)"),
    ('The user enjoyed the recommended item, specifically "Ronin (1998)."', "Ronin (1998)"),
    ('The user enjoys the movie "Ronin" and is particularly fond of "Heat".', "Ronin (1998)"),
    ('The user is particularly fond of the movie "Casino".', "Casino (1995)"),
    ('The user enjoyed "Scary Movie" and will love Ronin.', None),  # a history title
    ('The user enjoyed the recommended item, particularly the 1998 film "Ronin" and the 1995 '
     'film "Heat".', "Ronin (1998)"),
])
def test_seen_claims_found_in_real_outputs(text, claimed):
    history = [*HISTORY, "Scary Movie (2000)"]
    v = validate_explanation(text, [*history, *OTHERS, "Scary Movie 4 (2006)"], history_titles=history)
    assert (v.reason == f"says the user saw {claimed!r}, which is not in their history") if claimed else v.ok, v.reason


def test_unseen_claim_is_the_first_in_reading_order():
    text = "You watched Casino and Ronin."
    assert unseen_claim(text, HISTORY, OTHERS) == "Casino (1995)"
    assert unseen_claim(text, [*HISTORY, "Casino (1995)"], OTHERS) == "Ronin (1998)"
    assert unseen_claim("", HISTORY, OTHERS) is None


@pytest.mark.parametrize(("text", "reference"), [  # real SmolLM2 outputs (eval/bench_explain.py)
    ("The user liked the recommended item because it is a crime drama film like Heat.",
     "the recommended item"),
    ("The user enjoys the recommended item, which is a crime thriller like Heat.", "the recommended item"),
    ('The user enjoyed "Heat" and the recommended film, both tense.', "the recommended film"),
    ("You loved this movie for its score, as in Heat.", "this movie"),
    ("You will love the recommended item: a crime story like Heat.", None),  # not a past claim
    ("You enjoyed Heat, and the recommended item is just as tense.", None),  # a new clause
    ("You have not watched this film yet; it is tense like Heat.", None),  # negated
    ("The user enjoyed Heat. This film is another crime story.", None),  # another sentence
])
def test_the_item_itself_may_not_be_said_to_be_seen(text, reference):
    v = validate_explanation(text, [*HISTORY, *OTHERS, "Ronin (1998)"], history_titles=HISTORY,
                             item_title="Ronin (1998)")
    seen_reason = f"says the user already saw the item it recommends ({reference!r})"
    assert v.ok == (reference is None), v.reason
    assert reference is None or v.reason == seen_reason
    # an item from the history (include_seen requests) may be said to be seen
    v = validate_explanation(text, [*HISTORY, *OTHERS], history_titles=HISTORY, item_title="Heat (1995)")
    assert not v.reason.startswith("says the user already saw")
    assert recommended_item_claimed_seen(text, HISTORY, []) == reference
