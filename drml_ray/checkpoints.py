"""Checkpoint files: written atomically, read back without running any code.

Every state drml-ray saves (a training step's weights, optimizer, schedule, loop counters and random
state; meta-learning's theta; policy weights) is a ``torch.save`` of tensors, numbers, strings, lists and
dicts, read back with ``torch.load(weights_only=True)``: a run directory or an ``--init`` file from
elsewhere cannot execute code, and one holding anything else (a pickled object, a truncated or foreign
file) is refused with a :class:`~drml_ray.errors.UserError` naming it.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from drml_ray.errors import UserError, first_line

STATE_FILE = "state.pt"
"""The file of a fine-tuning checkpoint: weights, optimizer, schedule, loop and random states."""

STAGING_DIR = ".staging"
"""Where, inside Ray Train's storage folder of a run, a checkpoint is written before it is renamed into place."""


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` through a temporary file and a rename: a crash (or a full disk) mid-write
    leaves the previous file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        _save(state, tmp)
        tmp.replace(path)
    except OSError as err:  # a full disk, a quota, a folder gone: the previous checkpoint stays as it was
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: the checkpoint could not be written ({err.strerror or err}); the previous one, if "
                        "any, is intact: free space and run the same command again to continue") from None  # fmt: skip
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _Sink:
    """A file that remembers the first ``OSError`` its writes raised: ``torch.save`` turns a failed write (a full
    disk) into a ``RuntimeError`` about zip positions, which says nothing of the cause."""

    def __init__(self, file: Any):
        self.file, self.error = file, None

    def write(self, data: Any) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def flush(self) -> None:
        self.file.flush()


def _save(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` to ``path``; a write the file system refused raises its ``OSError``."""
    with open(path, "wb") as file:
        sink = _Sink(file)
        try:
            torch.save(state, sink)
        except RuntimeError:
            if sink.error is not None:
                raise sink.error from None
            raise


def load_state(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """The state saved at ``path``, loaded with ``weights_only=True`` (no unpickling of code)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint file") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
        reason = first_line(err)
        if reason.startswith("Weights only load failed"):  # (torch's advice to unpickle it is not ours to give)
            reason = "no torch file, or one holding other Python objects"
        raise UserError(f"{path}: not a drml-ray checkpoint (only tensors, numbers, strings, lists and dicts are "
                        f"read, never pickled objects): {reason}") from None  # fmt: skip
