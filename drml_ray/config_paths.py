"""The files, folders and models an experiment file names, checked before a command runs it: a path that is
not there (and where it would be found, beside the config), a model folder or a backbone that holds no model.
:func:`~drml_ray.config_files.load_config` names each problem at its key's line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import get_args

from pydantic import BaseModel

from drml_ray.errors import UserError


def path_problems(config: BaseModel, folder: Path) -> Iterator[tuple[str, str]]:
    """The dotted key of each :data:`~drml_ray.config.LocalPath` of ``config`` that names nothing, of each
    :data:`~drml_ray.config.ModelPath` and backbone that names no model, with what is wrong (``folder``: the
    config's, for :func:`beside_config`)."""
    from drml_ray.config import LocalPath, ModelConfig, ModelPath

    for name, section in config:
        for key, field in type(section).model_fields.items() if isinstance(section, BaseModel) else ():
            value, kinds = getattr(section, key), get_args(field.annotation)
            if not isinstance(value, str) or not {LocalPath, ModelPath} & set(kinds):
                continue
            if not Path(value).exists():
                yield f"{name}.{key}", f"{value}: no such file or folder{beside_config(value, folder)}"
            elif ModelPath in kinds and (problem := not_a_model(value)):
                yield f"{name}.{key}", problem
        if isinstance(section, ModelConfig) and (problem := _no_backbone(section.backbone, folder)):
            yield f"{name}.backbone", problem


def _no_backbone(name: str, folder: Path) -> str | None:
    """What is wrong with a backbone ``name`` known without loading it, or ``None``: a path that is not there and
    cannot be a Hub id (``./bert``), a run directory (its model is in ``best/``), a folder with no model in it.
    A Hub id is taken as it is (downloaded when the run starts, whose error names it if it cannot be)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from drml_ray.config import BUILT_IN_BACKBONES

    if name in BUILT_IN_BACKBONES:
        return None
    if Path(name).expanduser().exists():
        return not_a_model(name)
    try:
        validate_repo_id(name)
    except HFValidationError:
        return f"{name}: no such folder, nor a Hub id (ORG/NAME){beside_config(name, folder)}"
    return None


def not_a_model(path: str) -> str | None:
    """Why the folder ``path`` holds no saved model (a run directory: its ``best/``), or ``None``."""
    from drml_ray.runtime.rundir import model_folder

    try:
        found = model_folder(path)
    except UserError as err:
        return str(err)
    return None if found == Path(path).expanduser() else f"{path}: a run directory; its model is {found}"


CONFIG_FOLDER: ContextVar[Path | None] = ContextVar("config_folder", default=None)
"""The folder of the config file :func:`~drml_ray.config_files.load_config` is validating (for
:func:`beside_config`)."""


def beside_config(missing: str, folder: Path | None = None) -> str:
    """Where ``missing`` (a path made absolute against the working folder, not there) would be found if read from
    the config's own ``folder`` (default: the file being validated): the hint to a missing-path error, else ``""``."""
    folder = folder or CONFIG_FOLDER.get()
    if folder is None:
        return ""
    beside = folder / os.path.relpath(missing, Path.cwd())
    if not beside.exists() or beside.resolve() == Path(missing):
        return ""
    return (f"; {beside} is there, beside the config, but a relative path is read from the folder drml runs in "
            f"({Path.cwd()}): write it as {beside}, or run drml from {folder}")  # fmt: skip
