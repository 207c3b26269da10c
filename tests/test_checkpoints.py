"""Safe loading: every file drml-ray reads state from is loaded without unpickling code; a malicious pickle
is refused with a clean error, and its payload never runs."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from drml_ray.checkpoints import load_state, save_state
from drml_ray.cli import app
from drml_ray.errors import UserError


class Payload:
    """Unpickling this touches a file: the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def malicious(path: Path, marker: Path) -> Path:
    """A checkpoint-looking file that runs code when unpickled (as ``torch.load(weights_only=False)`` would)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weights": {"w": torch.zeros(2)}, "step": 3, "payload": Payload(marker)}, path)
    return path


def test_a_malicious_pickle_would_run_code_but_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = malicious(tmp_path / "state.pt", marker)
    with pytest.raises(UserError, match=r"state.pt: not a drml-ray checkpoint \(only tensors") as refused:
        load_state(path)
    assert not marker.exists()
    assert "weights_only` set to `False`" not in str(refused.value)  # (torch's advice to unpickle it, not ours)
    torch.load(path, weights_only=False)  # the file really is an attack (what the old loaders did)
    assert marker.exists()


def test_truncated_or_foreign_files_are_refused_cleanly(tmp_path):
    save_state(tmp_path / "good.pt", {"theta": {"w": torch.ones(3)}, "record": {"steps": [1, 2]}, "step": 2})
    assert load_state(tmp_path / "good.pt")["record"] == {"steps": [1, 2]}
    (tmp_path / "cut.pt").write_bytes((tmp_path / "good.pt").read_bytes()[:100])
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}))
    for name in ("cut.pt", "plain.pkl", "missing.pt"):
        with pytest.raises(UserError, match=name):
            load_state(tmp_path / name)


def test_the_rl_init_weights_and_an_rl_resume_checkpoint_refuse_it(tmp_path):
    from drml_ray.rl.driver import load_weights

    marker = tmp_path / "pwned"
    with pytest.raises(UserError, match="not a drml-ray checkpoint"):
        load_weights(malicious(tmp_path / "init" / "weights.pt", marker))
    result = CliRunner().invoke(app, ["rl", "meta-eval", "rl/smoke_nav2d", "-o", str(tmp_path / "run"),
                                      "--init", str(tmp_path / "init"), "--set", "eval.methods=[meta]"])  # fmt: skip
    assert result.exit_code == 2 and "weights.pt: not a drml-ray checkpoint" in result.output
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


def test_a_meta_training_resume_checkpoint_and_a_label_head_refuse_it(tmp_path):
    from drml_ray.config import load_config
    from drml_ray.meta.config import MetaExperiment
    from drml_ray.meta.label_head import load_generator
    from drml_ray.meta.outer import start_meta_run

    marker = tmp_path / "pwned"
    cfg = load_config("meta/smoke", model=MetaExperiment)
    with pytest.raises(UserError, match="reptile.state.pt: not a drml-ray checkpoint"):
        start_meta_run(cfg, "reptile", {"w": torch.zeros(2)}, malicious(tmp_path / "reptile.state.pt", marker))
    malicious(tmp_path / "folder" / "drml_label_head.pt", marker)
    with pytest.raises(UserError, match="drml_label_head.pt: not a drml-ray checkpoint"):
        load_generator(tmp_path / "folder", hidden=8)
    assert not marker.exists()


def test_a_disk_that_fills_during_a_write_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    """The real ``torch.save`` writing into a file that fills up after 64 bytes: torch reports a zip position
    error, and the message names the file system's own (ENOSPC)."""
    import errno
    import io

    from drml_ray import checkpoints

    class FullAfter64Bytes(io.FileIO):
        def write(self, data):
            if self.tell() + memoryview(data).nbytes > 64:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    path = tmp_path / "meta" / "checkpoint.pt"
    save_state(path, {"step": 10, "theta": {"w": torch.ones(3)}})
    monkeypatch.setattr(checkpoints, "open", lambda file, mode: FullAfter64Bytes(file, mode), raising=False)
    with pytest.raises(UserError, match=r"checkpoint.pt: the checkpoint could not be written \(No space left on"):
        save_state(path, {"step": 20, "theta": {"w": torch.zeros(3)}})
    monkeypatch.undo()
    assert load_state(path)["step"] == 10 and sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]
