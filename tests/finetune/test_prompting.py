"""The prompt spec decides how items read in the tuned reranker's prompt."""

from __future__ import annotations

from llmrank.finetune.config import PromptSpec
from llmrank.finetune.prompting import make_builder
from llmrank.records import Item

HEAT = Item("1", title="Heat", year=1995, genres=("Crime", "Thriller"), tags=("heist",))
UP = Item("2", title="Up", year=2009, genres=("Animation",), tags=("balloons",))
JAWS = Item("3", title="Jaws", year=1975, genres=("Horror",), tags=("shark",))


def _render(prompt_model, candidate_text: str) -> str:
    spec = PromptSpec(max_history=5, candidate_text=candidate_text, max_prompt_tokens=4096)
    return make_builder(prompt_model, spec).build([HEAT], [UP, JAWS]).text


def test_genres_reach_history_and_candidates(prompt_model):
    text = _render(prompt_model, "genres")
    assert '"Heat (1995). Genres: Crime, Thriller"' in text  # the history line
    assert '"Jaws (1975). Genres: Horror"' in text
    assert "heist" not in text and "shark" not in text  # tags are left to 'full'


def test_title_and_full_keep_titles_in_the_history(prompt_model):
    title, full = _render(prompt_model, "title"), _render(prompt_model, "full")
    assert "Genres" not in title
    assert '"Heat (1995)"' in full and "Genres: Horror" in full and "shark" in full
