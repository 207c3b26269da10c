"""Ray Train's record of its checkpoints: pruning what it does not list, keeping a copy, mending it after a
full disk (no Ray started)."""

from __future__ import annotations

import json
from pathlib import Path

from drml_ray.checkpoints import STAGING_DIR, STATE_FILE, save_state
from drml_ray.ner.train_record import (
    KEPT_COPY,
    RAY_SNAPSHOT,
    RecordKeeper,
    prune_unregistered_checkpoints,
    recover_record,
)


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


def test_checkpoints_written_but_never_moved_into_place_are_deleted_with_or_without_a_snapshot(tmp_path):
    """A worker writes each checkpoint under ``.staging`` and renames it into place when Ray reports it; a crash
    between the two leaves it there, never a checkpoint Ray knows."""
    for case, snapshot in {"snapshot": {"checkpoint_results": [result("checkpoint_a")]}, "none": None}.items():
        train = storage(tmp_path / case, ["checkpoint_a", f"{STAGING_DIR}/tmp1234"], snapshot)
        prune_unregistered_checkpoints(train)
        assert not (train / STAGING_DIR).exists(), case
        assert (train / "checkpoint_a" / "state.pt").exists(), case


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


def test_the_keeper_copies_the_record_after_a_checkpoint_and_a_cut_off_record_is_put_back(tmp_path):
    snapshot = {"checkpoint_results": [result("checkpoint_a")], "latest_checkpoint_result": result("checkpoint_a")}
    train = storage(tmp_path, ["checkpoint_a", "checkpoint_b"], snapshot)
    keeper = RecordKeeper(str(train))
    keeper.after_report(None, [{}], checkpoint=None)  # a report without a checkpoint: nothing to keep
    assert not (train / KEPT_COPY).exists()
    keeper.after_report(None, [{}], checkpoint="checkpoint_a")
    good = (train / RAY_SNAPSHOT).read_text()
    assert (train / KEPT_COPY).read_text() == good
    (train / RAY_SNAPSHOT).write_text("")  # a full disk cut Ray's next rewrite to 0 bytes
    assert recover_record(train) is None and (train / RAY_SNAPSHOT).read_text() == good
    assert recover_record(train) is None and (train / RAY_SNAPSHOT).read_text() == good  # readable: untouched


def test_with_no_usable_copy_the_run_continues_from_the_newest_whole_checkpoint(tmp_path):
    train = tmp_path / "train"
    save_state(train / "checkpoint_2026-01-01_10-00-00" / STATE_FILE, {"loop": {"epoch": 1}})
    save_state(train / "checkpoint_2026-01-01_10-05-00" / STATE_FILE, {"loop": {"epoch": 2}})
    (train / "checkpoint_2026-01-01_10-09-00").mkdir()
    (train / "checkpoint_2026-01-01_10-09-00" / STATE_FILE).write_bytes(b"PK\x03\x04 cut off")  # the full disk
    (train / RAY_SNAPSHOT).write_text("")
    (train / KEPT_COPY).write_text(json.dumps({"checkpoint_results": [result("checkpoint_gone")]}))  # stale copy
    assert recover_record(train) == train / "checkpoint_2026-01-01_10-05-00"
    assert not (train / RAY_SNAPSHOT).exists()  # moved aside: Ray starts a new record
