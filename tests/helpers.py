"""Small helpers shared by test modules, and the test doubles that run inside Ray workers.

This module is pickled *by value* (``register_pickle_by_value``): Ray workers cannot import ``tests``.
"""

from __future__ import annotations

import ast
import os
import sys
import time
from pathlib import Path

import ray.cloudpickle

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def top_level_imports(path: Path) -> set[str]:
    """The top-level package of every import in a Python file (``ray.tune`` -> ``ray``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return imported | {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


class FailOnce:
    """A training-loop callback that fails rank 0 once, right after evaluation ``after`` was checkpointed (a
    marker file in the run folder remembers it across Ray Train's restart of the worker group)."""

    def __init__(self, after: int = 1):
        self.after = after

    def after_checkpoint(self, state, rank: int, run_dir: Path) -> None:  # noqa: ANN001
        marker = run_dir / ".injected_failure"
        if rank == 0 and len(state.history) == self.after and not marker.exists():
            marker.touch()
            raise RuntimeError(f"injected failure after evaluation {self.after}")


class NoteNode:
    """A training-loop callback: after the first checkpoint, rank 0 writes the id of the node it runs on to
    ``marker`` (the multi-node fault test kills that node then)."""

    def __init__(self, marker: str):
        self.marker = marker

    def after_checkpoint(self, state, rank: int, run_dir: Path) -> None:  # noqa: ANN001
        if rank == 0 and len(state.history) == 1 and not os.path.exists(self.marker):
            Path(self.marker).write_text(ray.get_runtime_context().get_node_id())


class Squarer:
    """An executor test actor: squares numbers, dies (its process exits) or raises on request."""

    def square(self, x: int, seconds: float = 0.0) -> int:
        time.sleep(seconds)
        return x * x

    def die_once(self, x: int, marker: str) -> int:
        """Kill this actor's process the first time (the marker file says it happened), then square."""
        if not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)
        return x * x

    def die(self) -> None:
        os._exit(1)

    def fail(self, x: int) -> int:
        raise ValueError(f"no square for {x}")

    def pid(self) -> int:
        return os.getpid()


class Refuser(Squarer):
    """An executor test actor that refuses the user's input as it starts (a model folder a worker cannot load)."""

    def __init__(self) -> None:
        from drml_ray.errors import UserError

        raise UserError("/m: its head's labels are LABEL_0")


def chromium_dom(page: Path) -> str:
    """``page`` as headless Chromium leaves its DOM after the load handlers ran (skips without Chromium)."""
    import shutil
    import subprocess

    import pytest

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's)")
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip


def offline_hub_cache(folder: Path, monkeypatch, repo_id: str) -> Path:  # noqa: ANN001
    """A Hub cache in ``folder`` holding ``repo_id`` at commit ``abc123`` (its snapshot folder, returned empty for
    the test to fill), and a Hub with no network: its endpoint ``https://hub.invalid`` (``.invalid`` never
    resolves), no proxy set, ``HF_HUB_OFFLINE`` off."""
    from huggingface_hub import constants

    repo = folder / f"models--{repo_id.replace('/', '--')}"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    for key, value in {"ENDPOINT": "https://hub.invalid", "HF_HUB_CACHE": str(folder), "HF_HUB_OFFLINE": False}.items():
        monkeypatch.setattr(constants, key, value)
    for proxy in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    return repo / "snapshots" / "abc123"
