"""Ray Train's record of a run's checkpoints: ``checkpoint_manager_snapshot.json`` in its storage folder.

Ray rewrites the record in place after each checkpoint. A disk that fills during that write leaves it empty,
and Ray then refuses to start the run again (``CheckpointManagerInitializationError``), its checkpoints
intact but unlisted. So drml keeps a copy of the record after each checkpoint (:class:`RecordKeeper`, a Ray
Train callback run on the controller right after Ray wrote it), mends an unreadable record before a rerun
(:func:`recover_record`), and removes uploads the record does not list
(:func:`prune_unregistered_checkpoints`).

In Ray Train's local mode (``scaling.num_workers: 0``) there is no controller and Ray keeps no record: the loop
moves each checkpoint into place as Ray's upload would and keeps ``local_checkpoints.json`` itself
(:func:`keep_local_checkpoint`), with the same rule as the controller's, and :func:`local_result` reads it back
as Ray's ``Result``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import StringConstraints
from ray.train import UserCallback  # RAY
from typing_extensions import TypedDict

from drml_ray.checkpoints import STAGING_DIR, STATE_FILE, load_state
from drml_ray.errors import UserError
from drml_ray.runtime.runfiles import atomic_write_json, atomic_write_text, read_json

RAY_SNAPSHOT = "checkpoint_manager_snapshot.json"
KEPT_COPY = ".checkpoint_manager_snapshot.kept.json"
LOCAL_RECORD = "local_checkpoints.json"
"""Local mode's record of its checkpoints: ``[{"checkpoint_dir_name", "metrics"}, ...]``, the best first."""


def listed_checkpoints(record: Path) -> set[str] | None:
    """The checkpoint folders ``record`` lists; ``None`` if it is missing, unreadable or lists none."""
    names: set[str] = set()

    def note(node: dict[str, Any]) -> dict[str, Any]:  # every JSON object, wherever Ray's format nests it
        if isinstance(name := node.get("checkpoint_dir_name"), str):
            names.add(name)
        return node

    try:
        json.loads(record.read_text(encoding="utf-8"), object_hook=note)
    except (OSError, ValueError):
        return None
    return names or None


class RecordKeeper(UserCallback):  # RAY
    """After each report (Ray's record is written by then), a copy of the record, written atomically."""

    def __init__(self, train_dir: str):
        self.train_dir = Path(train_dir)

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        record = self.train_dir / RAY_SNAPSHOT
        if checkpoint is not None and listed_checkpoints(record):
            with contextlib.suppress(OSError):  # a full disk: the older copy stays, and the rerun says so
                atomic_write_text(self.train_dir / KEPT_COPY, record.read_text(encoding="utf-8"))


def recover_record(train_dir: Path) -> Path | None:
    """Before a rerun, mend a record a full disk cut off: put the kept copy back (if every folder it lists is
    there), else move the record aside and return the newest whole checkpoint for the run to continue from
    (Ray then starts a new record, so the best checkpoint is chosen among those written from now on)."""
    record, kept = train_dir / RAY_SNAPSHOT, train_dir / KEPT_COPY
    if not record.exists() or listed_checkpoints(record) is not None:
        return None
    names = listed_checkpoints(kept)
    if names is not None and all((train_dir / name).is_dir() for name in names):
        atomic_write_text(record, kept.read_text(encoding="utf-8"))
        print("[drml] Ray Train's record of its checkpoints was cut off (a full disk?): put back the copy kept "
              "after the last checkpoint")  # fmt: skip
        return None
    record.replace(record.with_name(f".{RAY_SNAPSHOT}.unreadable"))
    folders = sorted((p for p in train_dir.glob("checkpoint_*") if p.is_dir()), reverse=True)  # names are times
    for folder in folders:  # newest first
        with contextlib.suppress(UserError):
            load_state(folder / STATE_FILE)
            print(f"[drml] Ray Train's record of its checkpoints was cut off (a full disk?) before a copy was kept: "
                  f"continuing from {folder.name}, the newest whole checkpoint")  # fmt: skip
            return folder
    return None


def prune_unregistered_checkpoints(train_dir: Path) -> list[Path]:
    """Delete the ``checkpoint_*`` folders in Ray Train's storage folder that its record does not list, and the
    checkpoints a worker wrote but never moved into place (``.staging``: a crash mid-write).

    A run stopped between a worker's upload and the controller's bookkeeping (ASHA stopping a Tune
    trial mid-report, a full disk) leaves that upload behind, unknown to Ray: never resumed from, never
    deleted, 260 MB for MiniLM. Without a readable record nothing is deleted. Returns the deleted folders.
    """
    shutil.rmtree(train_dir / STAGING_DIR, ignore_errors=True)  # checkpoints written and never moved into place
    kept = listed_checkpoints(train_dir / RAY_SNAPSHOT) or listed_checkpoints(train_dir / LOCAL_RECORD)
    if kept is None:  # no record, or one not ours to judge
        return []
    orphans = sorted(p for p in train_dir.glob("checkpoint_*") if p.is_dir() and p.name not in kept)
    for orphan in orphans:
        shutil.rmtree(orphan, ignore_errors=True)
    return orphans


class Scores(TypedDict):
    dev_f1: float  # (what the record ranks its checkpoints by; the other metrics are kept as written)


class Kept(TypedDict):
    checkpoint_dir_name: Annotated[str, StringConstraints(pattern=r"^checkpoint_[^/\\]+$")]
    metrics: Scores


def local_checkpoints(train_dir: Path) -> list[dict[str, Any]]:
    """The checkpoints local mode's record lists (none before the first), checked: each a folder name of Ray's
    form and its metrics with a dev F1."""
    fix = f"delete {train_dir} to train from the beginning"
    return read_json(train_dir / LOCAL_RECORD, list, schema=list[Kept], fix=fix, default=[])


def local_checkpoint_name() -> str:
    """A checkpoint folder's name as Ray Train's controller makes it: the time, so names sort as they came."""
    return f"checkpoint_{datetime.now():%Y-%m-%d_%H-%M-%S.%f}"


def keep_local_checkpoint(train_dir: Path, name: str, metrics: dict[str, Any]) -> None:
    """Local mode: what Ray Train's controller does with a checkpoint moved into ``train_dir / name``. It is
    listed with its metrics; the record keeps the best by dev F1 (of equal scores the latest, as Ray ranks them)
    and the latest, as ``CheckpointConfig(num_to_keep=1, ...)`` does, and the folders it no longer lists are
    deleted once it is written."""
    entries = [*local_checkpoints(train_dir), {"checkpoint_dir_name": name, "metrics": metrics}]
    best, latest = max(reversed(entries), key=lambda entry: entry["metrics"]["dev_f1"]), entries[-1]  # (ties: later)
    atomic_write_json(train_dir / LOCAL_RECORD, [best] if best is latest else [best, latest])
    for entry in entries:
        if entry is not best and entry is not latest:
            shutil.rmtree(train_dir / entry["checkpoint_dir_name"], ignore_errors=True)


def local_result(train_dir: Path) -> Any:
    """Local mode's checkpoints as the ``ray.train.Result`` a run with workers returns: ``checkpoint`` the latest,
    ``best_checkpoints`` every kept one with its metrics; no checkpoint: ``None`` for both."""
    from ray.train import Checkpoint, Result  # RAY

    entries = local_checkpoints(train_dir)
    latest = entries[-1] if entries else None  # (the record lists the best, then the latest)
    best = [(Checkpoint(str(train_dir / e["checkpoint_dir_name"])), e["metrics"]) for e in entries]  # RAY
    return Result(metrics=latest["metrics"] if latest else None, error=None, path=str(train_dir),  # RAY
                  checkpoint=Checkpoint(str(train_dir / latest["checkpoint_dir_name"])) if latest else None,
                  best_checkpoints=best or None)  # fmt: skip
