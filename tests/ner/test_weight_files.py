"""A backbone's weight files are read before the run: a cut-short or foreign file is the user's to mend, not a bug
on the workers."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from drml_ray.errors import UserError
from drml_ray.ner.modeling import check_weight_files


def test_whole_weight_files_pass(tmp_path: Path):
    save_file({"w": torch.ones(4, 4)}, tmp_path / "model.safetensors")
    torch.save({"w": torch.ones(2)}, tmp_path / "pytorch_model.bin")  # (not read: safetensors is there)
    check_weight_files(tmp_path, "model.backbone 'x'")
    (tmp_path / "model.safetensors").unlink()
    check_weight_files(tmp_path, "model.backbone 'x'")  # a pickle of tensors alone


def test_a_safetensors_file_cut_short_is_named(tmp_path: Path):
    save_file({"w": torch.ones(64, 64)}, tmp_path / "model.safetensors")
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        UserError, match=r"^model.backbone 'x': .*/model.safetensors does not load: .*not fully covered"
    ):
        check_weight_files(tmp_path, "model.backbone 'x'")


def test_a_pickle_that_holds_more_than_tensors_is_refused_unrun(tmp_path: Path):
    torch.save({"w": torch.ones(2), "when": datetime.datetime(2020, 1, 1)}, tmp_path / "pytorch_model.bin")
    refused = r"pytorch_model.bin holds more than tensors \(Unsupported global: GLOBAL datetime.datetime was not an "
    with pytest.raises(UserError, match=refused + r"allowed global by default\); drml reads"):
        check_weight_files(tmp_path, "model.backbone 'x'")
