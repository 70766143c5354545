"""``llmrank serve``: --check loads and reports; a real uvicorn server answers on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import uvicorn
from typer.testing import CliRunner

from llmrank.cli.main import app

CONFIG = '[embedder]\nbackend = "hashing"\ncache = false\n\n[reranker]\nbackend = "fake"\n'


def test_serve_check_json(tmp_path):
    cfg = tmp_path / "deploy.toml"
    cfg.write_text(CONFIG)
    res = CliRunner().invoke(app, ["serve", "--check", "--json", "--config", str(cfg), "--port", "8765"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["url"] == "http://127.0.0.1:8765" and out["check"] is True
    assert out["health"]["dataset"]["name"] == "catalog" and out["health"]["model"]["backend"] == "fake"


def test_serve_rejects_a_bad_config(tmp_path):
    cfg = tmp_path / "deploy.toml"
    cfg.write_text("[reranker]\nbogus = 1\n")
    res = CliRunner().invoke(app, ["serve", "--check", "--config", str(cfg)])
    assert res.exit_code != 0 and "bogus" in str(res.exception)


def test_app_factory_for_worker_processes(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from llmrank.serve.app import CONFIG_ENV, app_from_env

    cfg = tmp_path / "deploy.toml"
    cfg.write_text(CONFIG)
    monkeypatch.setenv(CONFIG_ENV, str(cfg))
    health = TestClient(app_from_env()).get("/health").json()
    assert health["model"]["backend"] == "fake" and health["dataset"]["n_items"] == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_server_on_loopback(make_client):
    client, _ = make_client()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        assert server.started
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/health").json()["status"] == "ok"
            r = http.post("/recommend", json={"user_id": "u001", "k": 2})
            assert r.status_code == 200 and len(r.json()["items"]) == 2
            assert http.post("/recommend", json={"user_id": "nobody"}).status_code == 404
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()
