"""Joining Ray: the warning about a second local Ray instance (Ray Train leaks stopped trials' CPUs with two), and
a RAY_ADDRESS that Ray cannot join refused as the user's error."""

from __future__ import annotations

import logging
import signal
import socket

import pytest
import ray

import drml_ray._ray_compat
from drml_ray.errors import UserError
from drml_ray.ray_env import ensure_ray, warn_if_other_local_ray


def test_a_second_local_ray_is_named_in_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(drml_ray._ray_compat, "other_local_ray_addresses", lambda: ["10.0.0.7:41000", "10.0.0.7:6379"])
    with caplog.at_level(logging.WARNING, logger="drml_ray.ray_env"):
        warn_if_other_local_ray()
    assert "10.0.0.7:41000, 10.0.0.7:6379" in caplog.text and "ray start --head" in caplog.text


def test_no_warning_when_this_is_the_only_ray(monkeypatch, caplog):
    monkeypatch.setattr(drml_ray._ray_compat, "other_local_ray_addresses", lambda: [])
    with caplog.at_level(logging.WARNING, logger="drml_ray.ray_env"):
        warn_if_other_local_ray()
    assert caplog.text == ""


@pytest.mark.parametrize(("scheme", "server"), [("", "Ray cluster"), ("ray://", "Ray Client server")])
def test_a_ray_address_where_nothing_listens_is_refused_at_once(monkeypatch, scheme, server):
    """(``ray.init`` retries a cluster's address for minutes, and waits ~40 s on a Ray Client's.)"""
    with socket.socket() as sock:  # a port that was free a moment ago, closed again: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"{scheme}127.0.0.1:{port}")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # (the shared test Ray may be up)
    monkeypatch.setattr(ray, "init", lambda **_: pytest.fail("ray.init would wait"))
    with pytest.raises(UserError, match=rf"RAY_ADDRESS={scheme}127.0.0.1:{port}: no {server} answers there \(Conn"):
        ensure_ray()


def test_finetune_and_tune_check_the_ray_address_before_they_read_their_inputs(monkeypatch, tmp_path):
    # (finetune read CoNLL-2003 and its tokenizer first: 9.7 s before the refusal, 2.9 s now)
    from drml_ray.config import FinetuneConfig
    from drml_ray.ner import finetune
    from drml_ray.tune.driver import run_tune

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(finetune, "load_corpus", lambda *_: pytest.fail("the corpus was read first"))
    cfg = FinetuneConfig.model_validate({"name": "x", "tune": {"space": {"train.lr": {"choice": [1e-4]}}}})
    for run in (finetune.run_finetune, run_tune):
        with pytest.raises(UserError, match=rf"RAY_ADDRESS=127.0.0.1:{port}: no Ray cluster answers"):
            run(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_address_ray_cannot_join_is_the_users_error_not_a_bug(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")  # the dashboard's address, for `ray job submit`
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # (ray.init reads the address before anything else)
    handler = signal.getsignal(signal.SIGTERM)  # (but for its own SIGTERM handler, put back below)
    with pytest.raises(UserError, match=r"RAY_ADDRESS=http://127.0.0.1:8265: Invalid Ray address.* GCS address") as err:
        ensure_ray()
    signal.signal(signal.SIGTERM, handler)
    assert str(err.value).endswith("(unset RAY_ADDRESS to run on a local Ray)")


def test_a_head_that_answers_but_will_not_let_us_in_is_refused_with_the_auth_hint(monkeypatch):
    """What Ray 2.60 raises after ~30 s of InvalidAuthToken retries against a head with token auth (measured by hand:
    RAY_AUTH_MODE=disabled against `RAY_AUTH_MODE=token ray start --head`)."""

    def refused(**_: object) -> None:
        raise ConnectionError("Failed to connect to Ray cluster at 192.0.2.2:6391")

    with socket.socket() as head:  # something listens, so the address passes the up-front check
        head.bind(("127.0.0.1", 0))
        head.listen()
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{head.getsockname()[1]}")
        monkeypatch.setattr(ray, "is_initialized", lambda: False)
        monkeypatch.setattr(ray, "init", refused)
        with pytest.raises(UserError, match=r"192.0.2.2:6391; a head with token auth also needs RAY_AUTH_MODE=token"):
            ensure_ray()


@pytest.mark.parametrize(("code", "raised"), [(signal.SIGTERM, KeyboardInterrupt), (3, SystemExit)])
def test_sigterm_while_a_local_ray_starts_stops_drml_as_ctrl_c_does(monkeypatch, code, raised):
    """Ray's own SIGTERM handler is in place while ``ray.init`` runs: it exited with status 15 and no word."""
    import drml_ray.ray_env

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(drml_ray.ray_env, "warn_if_other_local_ray", lambda: None)
    monkeypatch.setattr(drml_ray.ray_env, "use_local_ray_settings", lambda: None)

    def init(**_):
        raise SystemExit(code)

    monkeypatch.setattr(ray, "init", init)
    with pytest.raises(raised):
        ensure_ray()
