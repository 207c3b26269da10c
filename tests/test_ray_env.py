"""The warning about a second local Ray instance (Ray Train leaks stopped trials' CPUs with two)."""

from __future__ import annotations

import logging

import drml_ray._ray_compat
from drml_ray.ray_env import warn_if_other_local_ray


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


def started_with(monkeypatch, *cli: str, address: str | None = None) -> dict:
    """The keyword arguments ``drml *cli`` would start (or join) Ray with."""
    import ray
    from typer.testing import CliRunner

    from drml_ray import ray_env
    from drml_ray.cli import app

    calls: list[dict] = []
    monkeypatch.setenv(ray_env.DASHBOARD_ENV, "1")  # (recorded, so that teardown removes what --dashboard sets)
    monkeypatch.delenv(ray_env.DASHBOARD_ENV)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(drml_ray._ray_compat, "other_local_ray_addresses", lambda: [])
    if cli:  # (only the global options: the command itself is --help, which starts nothing)
        assert CliRunner().invoke(app, [*cli, "data", "--help"]).exit_code == 0
    ray_env.ensure_ray(address)
    return calls[0]


def test_a_local_ray_starts_lean_unless_the_dashboard_is_asked_for(monkeypatch):
    lean = started_with(monkeypatch)
    assert lean["include_dashboard"] is False and lean["_system_config"] == {"enable_worker_prestart": False}
    assert started_with(monkeypatch, "--dashboard")["include_dashboard"] is True


def test_a_cluster_is_joined_as_it_is(monkeypatch):
    joined = started_with(monkeypatch, address="ray://head:10001")
    assert joined["address"] == "ray://head:10001" and "_system_config" not in joined
