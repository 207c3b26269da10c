"""Which model folders ``drml serve`` serves, under which names, and what ``GET /v1/models`` says of each."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drml_ray.errors import UserError
from drml_ray.ner.decoding import check_head
from drml_ray.runtime.rundir import model_folder

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ModelSource:
    """A model folder to serve under ``name``; ``run_dir`` is the run that wrote it (``None`` for a bare folder)."""

    name: str
    model_dir: Path
    run_dir: Path | None

    def as_config(self) -> dict[str, str | None]:
        """The JSON form a deployment's ``user_config`` carries (``from_config`` reads it back)."""
        return {
            "name": self.name,
            "model_dir": str(self.model_dir),
            "run_dir": str(self.run_dir) if self.run_dir else None,
        }

    @classmethod
    def from_config(cls, spec: dict[str, str | None]) -> ModelSource:
        run_dir = spec.get("run_dir")
        return cls(str(spec["name"]), Path(str(spec["model_dir"])), Path(run_dir) if run_dir else None)


def resolve(path: str | Path, name: str | None = None) -> ModelSource:
    """A model folder (``runs/x/best``), a run directory (``runs/x``, served from its ``best/``) or a Hub id
    (``ORG/NAME``, served as ``NAME`` from the Hub cache: :func:`~drml_ray.hub.hub_model`)."""
    model_dir = model_folder(path).resolve()
    check_head(model_dir)  # (a replica would say it after Serve tried it three times)
    run_dir = model_dir.parent if (model_dir.parent / "results.json").is_file() else None
    hub = not Path(path).expanduser().exists()  # (model_folder took it as a Hub id)
    name = name or (str(path).split("/")[1] if hub else run_dir.name if run_dir else model_dir.name)
    if not NAME.fullmatch(name):
        raise UserError(f"model name {name!r}: use letters, digits, '.', '_' or '-' (at most 64); "
                        "pass NAME=DIR with --model")  # fmt: skip
    return ModelSource(name, model_dir, run_dir)


def parse_sources(positional: str | None, named: list[str]) -> list[ModelSource]:
    """``drml serve DIR`` and repeated ``--model NAME=DIR``: every model, names unique, the first the default."""
    sources = [resolve(positional)] if positional else []
    for spec in named:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--model {spec!r}: expected NAME=DIR, e.g. --model politics=runs/politics")
        sources.append(resolve(folder, name))
    if not sources:
        raise UserError("nothing to serve: give a model folder or run directory, or --model NAME=DIR")
    names = [s.name for s in sources]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"model name {twice[0]!r} is used twice; name them apart with --model NAME=DIR")
    return sources


def version(model_dir: Path) -> str:
    """A short identity of a model folder's weights and config (what a swap changes): shards and a
    ``pytorch_model.bin`` count as ``model.safetensors`` does."""
    digest = hashlib.sha256()
    files = [model_dir / "config.json", *sorted(model_dir.glob("*.safetensors")), model_dir / "pytorch_model.bin"]
    for file in files:
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def describe(source: ModelSource, labels: list[str]) -> dict[str, Any]:
    """What ``GET /v1/models`` shows of a served model: labels, where it came from, its test F1."""
    test_f1 = None
    if source.run_dir is not None:
        try:
            results = json.loads((source.run_dir / "results.json").read_text())
            test_f1 = results["test"]["entity"]["micro"]["f1"]
        except (OSError, ValueError, KeyError, TypeError):
            test_f1 = None  # a run of another kind, or a results.json without test scores
    return {
        "name": source.name,
        "labels": labels,
        "model_dir": str(source.model_dir),
        "run_dir": str(source.run_dir) if source.run_dir else None,
        "test_f1": test_f1,
        "version": version(source.model_dir),
    }
