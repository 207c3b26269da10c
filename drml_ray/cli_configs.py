"""``drml configs``: the experiment files shipped inside the package, and a check of any experiment file as a run
reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from drml_ray.cli_support import SetOption, user_errors
from drml_ray.errors import UserError

configs_app = typer.Typer(help="Experiment files: the shipped ones, and a check of any.", no_args_is_help=True)


@configs_app.command("list")
@user_errors
def configs_list() -> None:
    """The shipped experiment files, by name (any command takes the name, or configs/NAME.yaml, as CONFIG)."""
    from drml_ray.config import config_path, shipped_configs

    for name in shipped_configs():
        first = config_path(name).read_text(encoding="utf-8").splitlines()[:1]
        typer.echo(f"{name:36} {first[0].lstrip('# ') if first and first[0].startswith('#') else ''}")


@configs_app.command("show")
@user_errors
def configs_show(name: Annotated[str, typer.Argument(help="A shipped config, e.g. ner/smoke.")]) -> None:
    """Print a shipped experiment file (copy it to start your own)."""
    from drml_ray.config import config_path
    from drml_ray.config_files import shipped_like

    path = config_path(name)
    if not path.is_file():
        raise UserError(f"{name}: no such shipped config ({shipped_like(name)}drml configs list shows them)")
    typer.echo(path.read_text(encoding="utf-8"), nl=False)


@configs_app.command(
    "check",
    epilog="Examples: `drml configs check my_ner.yaml --set train.epochs=3` (before `ray job submit`) · "
    "`drml configs check tune/smoke` · `drml configs check experiments/` (every YAML file in it, a line each)",
)
@user_errors
def configs_check(
    configs: Annotated[
        list[Path], typer.Argument(help="Experiment YAML files or shipped configs; a folder checks its YAML files.")
    ],
    set_: SetOption = None,
) -> None:
    """Check an experiment file as a run reads it (every key and value, the --set overrides, a tune section's
    metric, a backbone folder's tokenizer, weights, positions and layers) without running anything, and print it
    with every default filled in and the commands that run it.
    Given several files (or a folder), check each and print a line per file; exit 2 if any is not valid."""
    from drml_ray.config import dump_config

    files = [f for c in configs for f in (sorted([*c.rglob("*.yaml"), *c.rglob("*.yml")]) if c.is_dir() else [c])]
    if len(files) == 1 and configs == files:
        cfg, line = _checked(files[0], set_ or [])
        typer.echo(f"# {line}")
        typer.echo(dump_config(cfg), nl=False)
        return
    failed = 0
    for path in files:
        try:
            typer.echo(_checked(path, set_ or [])[1])
        except UserError as err:
            failed += 1
            typer.echo(f"drml: error: {err}", err=True)
    if failed or not files:
        raise UserError(f"{failed} of {len(files)} experiment files not valid" if files else "no YAML files there")


def _checked(config: Path, overrides: list[str]) -> tuple[Any, str]:
    """The config of one experiment file, checked as a run reads it, and a line saying what runs it."""
    from drml_ray.config import at_its_line, load_config
    from drml_ray.runtime.registry import kind_of, searched_kind
    from drml_ray.runtime.rundir import default_run_dir

    cfg = load_config(config, overrides, check_files=True)
    with at_its_line(config, overrides, type(cfg)):  # (tune.metric is checked against the kind's metrics)
        kind = searched_kind(cfg) if cfg.tune is not None else kind_of(cfg)
        _check_backbone_here(cfg)
    commands = [f"drml {c.name}" for c in kind.commands] + (["drml tune"] if cfg.tune is not None else [])
    return cfg, (f"{config}: valid ({kind.name}); run by {', '.join(commands)}; output in "
                 f"{default_run_dir(cfg.name)}/ unless --output-dir says otherwise")  # fmt: skip


def _check_backbone_here(cfg: Any) -> None:
    """The checks a run makes of its backbone before it starts (its tokenizer, weight files, positions against
    ``model.max_length``, ``top_layers`` against its depth, LoRA's modules), where the backbone is a folder here
    (~5 s: transformers loads). A Hub id is not fetched to check it (the machine that runs the job fetches it); a
    built-in one is checked when the run starts."""
    from drml_ray.config import BUILT_IN_BACKBONES, ModelConfig

    model = getattr(cfg, "model", None)
    if isinstance(model, ModelConfig) and model.backbone not in BUILT_IN_BACKBONES and Path(model.backbone).is_dir():
        from drml_ray.ner.finetune import check_backbone_apart  # (torch and Ray: seconds)

        check_backbone_apart(model, 3, ())  # (3 labels: the check needs some; how many does not matter)
