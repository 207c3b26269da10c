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
