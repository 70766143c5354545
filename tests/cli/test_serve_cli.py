"""``llmrank serve --json`` outside --check: stdout holds the JSON document and nothing else
while the server runs (uvicorn's access log went to stdout), and the document is flushed
before the server starts (a supervisor reading the pipe waited until the server exited)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
from pathlib import Path

import pytest
import uvicorn

from llmrank.cli.serve import serve

CONFIG = '[embedder]\nbackend = "hashing"\ncache = false\n\n[reranker]\nbackend = "fake"\n'


@pytest.fixture
def restore_uvicorn_logging():
    yield
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)


def test_json_stdout_is_only_the_document_while_serving(tmp_path: Path, monkeypatch,
                                                        restore_uvicorn_logging) -> None:
    cfg = tmp_path / "deploy.toml"
    cfg.write_text(CONFIG)
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", write_through=False)
    seen: dict[str, bytes] = {}

    def fake_run(app, **kwargs):  # what uvicorn.run does with logging, then one request
        from uvicorn.config import LOGGING_CONFIG

        seen["visible"] = raw.getvalue()  # what a reader of the pipe has got by now
        logging.config.dictConfig(kwargs.get("log_config", LOGGING_CONFIG))
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d',
                                                 "127.0.0.1:5000", "GET", "/health", "1.1", 200)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setattr(sys, "stdout", out)
    serve(config=cfg, host="127.0.0.1", port=8765, workers=1, check=False, json_out=True, verbose=False)
    out.flush()
    body = json.loads(raw.getvalue().decode())  # only the document: no access-log line
    assert body["url"] == "http://127.0.0.1:8765" and body["check"] is False
    assert json.loads(seen["visible"].decode()) == body
