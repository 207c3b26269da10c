"""The experiment kinds, and the one table every face of drml-ray dispatches through.

A *kind* is a family of experiments sharing one config model: NER fine-tuning, NER meta-learning,
RL (meta-RL and transfer), ... Its module (one per kind, named in :data:`KIND_MODULES`) declares a
:class:`Kind`: the config model and the top-level YAML sections that identify it, its commands (each
a run function, its result file and its CLI options), how ``drml tune`` runs one trial of it, and
the sections of its ``drml report``. The CLI, ``jobs/``, the Tune driver and the report read this
table; none of them knows a kind by name.

Heavy functions are named as ``"module:function"`` and imported when called, so that ``drml --help``
and config validation never import torch or Ray.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from drml_ray.errors import UserError
from drml_ray.text import counted

Scope = Literal["best", "last"]
"""Which of a trial's results ranks it in a search (:class:`TuneSpec`)."""

KIND_MODULES = (
    "drml_ray.irl.kind",
    "drml_ray.rl.kind",
    "drml_ray.meta.kind",
    "drml_ray.continual.kind",
    "drml_ray.ner.kind",
)
"""One line per kind. A config is of the first kind one of whose sections it has; the last kind has none
and takes every other file."""


@dataclass(frozen=True)
class Command:
    """One ``drml`` command of a kind. ``run(cfg, run_dir, **options)`` returns what it wrote to ``marker``."""

    name: str
    """The command line after ``drml``: ``finetune``, ``meta-eval``, ``rl transfer``."""
    run: str
    """``"module:function"``."""
    marker: str | None
    """Its result file, written last (a finished run); ``None``: filled cell by cell, never finished."""
    help: str
    example: str
    options: tuple[str, ...] = ("overwrite",)
    """CLI options beyond CONFIG, ``--set`` and ``--output-dir``: ``overwrite``, ``init`` (a path),
    ``inits`` (repeatable ``METHOD=PATH``)."""
    default: bool = False
    """In a command group (``continual run``): also what the group runs when given a CONFIG (``drml continual
    CONFIG``)."""


@dataclass(frozen=True)
class TrialPlan:
    """What one Tune trial of a config needs, as the Tune driver plans the search."""

    cpus: float
    gpus: float
    budget: int
    """The schedulers' time budget of the longest trial: epochs, or held-out checks."""
    workers: str
    """What reserves those resources, for the progress line: ``2 Ray Train workers``."""
    retries: int = 0
    """Times Tune restarts a failed trial."""


def actor_trial_plan(meta: Any, gpus_per_worker: float = 0.0) -> TrialPlan:
    """A trial that meta-trains on its own ``meta.workers`` actors; the schedulers count its checks.

    >>> from types import SimpleNamespace as Meta
    >>> actor_trial_plan(Meta(workers=3, cpus_per_worker=2, meta_steps=100, eval_every=25), 0.5)
    TrialPlan(cpus=6, gpus=1.5, budget=4, workers='3 Ray actors', retries=0)
    """
    cpus, budget = meta.workers * meta.cpus_per_worker, math.ceil(meta.meta_steps / meta.eval_every)
    return TrialPlan(cpus, meta.workers * gpus_per_worker, budget, workers=counted(meta.workers, "Ray actor"))


class Prepared(NamedTuple):
    """What a kind's ``prepare`` gives the search: what every trial shares, a line saying what it searches, and
    what it read, each input named with a hash of its content (``--resume`` refuses a search whose data changed)."""

    shared: Any
    what: str
    inputs: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class TuneSpec:
    """How ``drml tune`` searches a kind."""

    metrics: dict[str, str]
    """The metrics a trial reports to Tune, and the mode of each (``tune.metric`` must be one of them)."""
    plan: Callable[[Any], TrialPlan]
    prepare: str
    """``"module:function"``, ``(cfg) -> Prepared`` on the driver before the search: checks the config, loads what
    every trial shares (a corpus, put in the object store once)."""
    trial: str
    """``"module:function"``, ``(cfg, trial_dir, shared) -> None``: one trial, its params applied; it reports
    to Tune (``tune.report`` or Ray Train's ``TuneReportCallback``) with a ``checkpoint_path``."""
    finish: str
    """``"module:function"``, ``(best_cfg, run_dir, best_trial, shared) -> dict``: the best trial's results."""
    scope: Scope = "best"
    """Which of a trial's results ranks it: its best (each result a checkpoint to keep: an epoch, a meta-step) or
    its last (each result a stage the next builds on: continual learning's experiences)."""
    command: str | None = None
    """The command a trial is a run of (``best_config.yaml`` runs it again); default: the kind's first."""


def driver_tune(driver: str, metric: str, plan: Callable[[Any], TrialPlan],
                scope: Scope = "best", command: str | None = None) -> TuneSpec:  # fmt: skip
    """The search of a kind whose ``driver`` module has ``prepare_search`` and ``search_trial``, whose trials report
    ``metric`` (higher is better) with the folder of what they trained as ``checkpoint_path``."""
    return TuneSpec(metrics={metric: "max"}, plan=plan, prepare=f"{driver}:prepare_search",
                    trial=f"{driver}:search_trial", finish="drml_ray.tune.driver:best_model_results",
                    scope=scope, command=command)  # fmt: skip


@dataclass(frozen=True)
class Kind:
    name: str
    config: type
    sections: tuple[str, ...]
    """Top-level YAML keys that make a file this kind (an RL file has ``env:`` or ``ppo:``)."""
    commands: tuple[Command, ...]
    report: str
    """``"module:function"``, ``(run_dir) -> list[report.build.Section]``: the kind's report sections."""
    tune: TuneSpec | None = None
    summary: str = ""
    """One line for the help of a command group (``drml rl``)."""
    cli: str | None = None
    """``"module:function"``, ``(group: typer.Typer, user_errors) -> None``: commands of the kind's group that are not
    experiment commands (``drml continual extend RUN_DIR DATA``)."""


def resolve(ref: str) -> Callable[..., Any]:
    """The function a ``"module:function"`` reference names."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def kinds() -> list[Kind]:
    return [importlib.import_module(m).KIND for m in KIND_MODULES]


def kind_of_data(data: Any) -> Kind:
    """The kind of a parsed YAML mapping: the first whose sections it holds, else the default kind."""
    every = kinds()
    if isinstance(data, dict):
        for kind in every:
            if any(section in data for section in kind.sections):
                return kind
    return next(kind for kind in every if not kind.sections)


def kind_of(cfg: Any) -> Kind:
    """The kind of a validated config."""
    return next(kind for kind in kinds() if type(cfg) is kind.config)


def searched_kind(cfg: Any) -> Kind:
    """The kind of ``cfg``, checked searchable by ``drml tune``: a ``tune.space``, and a metric its trials report."""
    kind = kind_of(cfg)
    if kind.tune is None:
        raise UserError(f"drml tune cannot search {kind.name} experiments")
    if cfg.tune is None or not cfg.tune.space:
        raise UserError(f"experiment '{cfg.name}' has no tune.space to search (see configs/tune/smoke.yaml)")
    metrics = kind.tune.metrics
    if cfg.tune.metric not in metrics:
        first = next(iter(metrics))
        raise UserError(f"tune.metric: a {kind.name} trial reports {', '.join(metrics)}, not {cfg.tune.metric!r}: set "
                        f"tune.metric: {first} and tune.mode: {metrics[first]}")  # fmt: skip
    return kind


def kind_named(name: str) -> Kind:
    return next(kind for kind in kinds() if kind.name == name)
