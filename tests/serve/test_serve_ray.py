"""``drml serve`` end to end on the shared Ray: answers, batches, bad requests, a swap under load, shutdown."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import requests

from drml_ray.config import ModelConfig
from drml_ray.data.reader import read_corpus_file
from drml_ray.ner.modeling import build_model, load_tokenizer, save_hf_folder
from drml_ray.serve.api import Limits
from drml_ray.serve.deploy import ServeOptions, deploy
from drml_ray.serve.models import resolve

pytestmark = pytest.mark.ray
LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def _tiny_model(folder, seed):
    tokenizer = load_tokenizer("tiny-random-bert")
    model = build_model(ModelConfig(backbone="tiny-random-bert"), LABELS, seed=seed, vocab_size=len(tokenizer))
    save_hf_folder(model, tokenizer, folder)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bad_requests(url):
    """Every kind of refused request: status and the field named."""
    cases = [
        (b'{"text": ', 400, "body"),
        (b'{"text": ""}', 422, "text"),
        (b'{"text": ["a"]}', 422, "text"),
        (b'{"texts": ["ok", 5]}', 422, "texts[1]"),
        (json.dumps({"text": "x" * 101}).encode(), 413, "text"),
        (json.dumps({"texts": ["a"] * 5}).encode(), 413, "texts"),
        (b'{"text": "' + b"y" * 5000 + b'"}', 413, "body"),
        (b'{"text": "a", "model": "nope"}', 404, "model"),
    ]
    for body, status, field in cases:
        got = requests.post(f"{url}/v1/predict", data=body, timeout=30)
        assert (got.status_code, got.json()["error"]["field"]) == (status, field), body[:40]


def test_serve_answers_batches_refuses_and_swaps_without_failures(ray_session, tmp_path):
    from ray import serve

    first, second = resolve(_tiny_model(tmp_path / "a", 3), "ner"), resolve(_tiny_model(tmp_path / "b", 4), "ner")
    limits = Limits(max_chars=100, max_texts=4, max_body=4000)
    opts = ServeOptions(port=_free_port(), max_batch=8, batch_wait_ms=20, cpus=0.5, log_requests=str(tmp_path / "log"),
                        limits=limits)  # fmt: skip
    url = deploy([first], opts)
    try:
        if os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1":  # as drml serve sets it (conftest: ray_session)
            assert "HAProxyManager" in _alive_serve_actors()  # the high-throughput ingress serves the requests
        models = requests.get(f"{url}/v1/models", timeout=30).json()
        assert models["default"] == "ner" and models["models"][0]["labels"] == LABELS
        one = requests.post(f"{url}/v1/predict", json={"text": "Angela Merkel flew to Paris."}, timeout=30).json()
        assert one["model"] == "ner" and one["text"] == "Angela Merkel flew to Paris."
        assert all(one["text"][e["start"] : e["end"]] == e["text"] for e in one["entities"])
        many = requests.post(f"{url}/v1/models/ner/predict", json={"texts": ["Bob ran.", "Ann"]}, timeout=30).json()
        assert [r["text"] for r in many["results"]] == ["Bob ran.", "Ann"]
        with ThreadPoolExecutor(16) as pool:  # concurrent clients share batches and each gets its own answer
            texts = [f"Client {i} met Anna in Rome." for i in range(32)]
            answers = list(pool.map(lambda t: requests.post(f"{url}/v1/predict", json={"text": t}, timeout=60), texts))
        assert [a.json()["text"] for a in answers] == texts
        _bad_requests(url)
        assert requests.get(f"{url}/healthz", timeout=30).json()["status"] == "ok"  # no request crashed it
        schema = requests.get(f"{url}/openapi.json", timeout=30).json()
        assert {"/v1/predict", "/v1/models", "/healthz"} <= set(schema["paths"])
        assert "texts" in json.dumps(schema["paths"]["/v1/predict"]["post"]["requestBody"])
        _swap_under_load(url, [second], replace(opts, dtype="bfloat16"), old=one["version"])
    finally:
        serve.delete("drml")
        serve.shutdown()
    time.sleep(2)
    assert _alive_serve_actors() == []  # the controller, the proxy (or HAProxy's manager) and every replica are gone
    logged = read_corpus_file(tmp_path / "log")  # the replica flushed its log when it stopped
    assert len(logged) >= 3 + 32 and all(len(s.tokens) == len(s.tags) for s in logged)


def _alive_serve_actors() -> list[str]:
    from ray.util.state import list_actors

    names = [a.class_name or "" for a in list_actors(filters=[("state", "=", "ALIVE")])]
    return [name for name in names if "Serve" in name or "HAProxy" in name]


def _swap_under_load(url, sources, opts, old):
    """Deploy other model folders while 4 clients keep asking: no request fails, each names its version."""
    stop, seen, failures = threading.Event(), [], []

    def client():
        while not stop.is_set():
            try:
                got = requests.post(f"{url}/v1/predict", json={"text": "Anna lives in Rome."}, timeout=60)
                got.raise_for_status()
                seen.append(got.json()["version"])
            except Exception as err:  # noqa: BLE001 - any failure is what the test counts
                failures.append(repr(err))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    deploy(sources, opts)
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert seen[0] == old and seen[-1] != old and set(seen) == {old, seen[-1]}


def test_a_model_every_replica_refuses_is_the_users_error_not_serves(ray_session, tmp_path):
    from ray import serve

    from drml_ray.errors import UserError
    from tests.test_malformed import tiny_model

    tiny_model(rows=100)(tmp_path / "other")  # another model's tokenizer: each replica refuses it as it loads it
    try:
        with pytest.raises(UserError, match=r"other: its tokenizer has 30,522 tokens but the model embeds 100"):
            deploy([resolve(tmp_path / "other", "ner")], ServeOptions(port=_free_port(), cpus=0.5))
    finally:
        serve.shutdown()
