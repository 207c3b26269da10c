"""Ray Train storage folders keep only the checkpoints Ray's snapshot lists (no Ray needed)."""

from __future__ import annotations

import json
from pathlib import Path

from drml_ray.ner.finetune import RAY_SNAPSHOT, prune_unregistered_checkpoints


def storage(tmp_path: Path, folders: list[str], snapshot: object | None) -> Path:
    train = tmp_path / "train"
    for name in folders:
        (train / name).mkdir(parents=True)
        (train / name / "state.pt").write_bytes(b"weights")
    if snapshot is not None:
        text = snapshot if isinstance(snapshot, str) else json.dumps(snapshot)
        (train / RAY_SNAPSHOT).write_text(text, encoding="utf-8")
    return train


def result(name: str) -> dict:
    return {"version": 0, "checkpoint_dir_name": name, "metrics": {"dev_f1": 0.5}}


def test_an_upload_the_snapshot_does_not_list_is_deleted_and_the_listed_ones_kept(tmp_path):
    best, latest, orphan = "checkpoint_a", "checkpoint_b", "checkpoint_c"
    snapshot = {"checkpoint_results": [result(latest), result(best)], "latest_checkpoint_result": result(latest),
                "pending_training_results": []}  # fmt: skip
    train = storage(tmp_path, [best, latest, orphan], snapshot)
    (train / "checkpoint_d.lock").write_text("")  # not a folder: left alone

    assert prune_unregistered_checkpoints(train) == [train / orphan]
    assert sorted(p.name for p in train.iterdir()) == [best, latest, "checkpoint_d.lock", RAY_SNAPSHOT]


def test_a_checkpoint_named_only_as_latest_or_pending_is_kept(tmp_path):
    snapshot = {"checkpoint_results": [result("checkpoint_a")], "latest_checkpoint_result": result("checkpoint_b"),
                "pending_training_results": [[result("checkpoint_c"), {"validate": False}]]}  # fmt: skip
    train = storage(tmp_path, ["checkpoint_a", "checkpoint_b", "checkpoint_c", "checkpoint_d"], snapshot)
    assert [p.name for p in prune_unregistered_checkpoints(train)] == ["checkpoint_d"]


def test_without_a_readable_snapshot_listing_checkpoints_nothing_is_deleted(tmp_path):
    folders = ["checkpoint_a", "checkpoint_b"]
    for case, snapshot in {"missing": None, "torn": '{"checkpoint_res', "empty": {"checkpoint_results": []}}.items():
        train = storage(tmp_path / case, folders, snapshot)
        assert prune_unregistered_checkpoints(train) == [], case
        assert sorted(p.name for p in train.glob("checkpoint_*") if p.is_dir()) == folders, case
