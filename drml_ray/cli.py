"""The ``drml`` command.

The experiment commands (``finetune``, ``meta-train``, ``rl transfer``, ...) come from the experiment
registry (:mod:`drml_ray.runtime.registry`): one per command of each kind, all taking CONFIG, ``--set``
and ``--output-dir`` (default ``runs/<experiment name>``). A finished run is never replaced without
``--overwrite``. A mistake in the user's input (:class:`~drml_ray.errors.UserError`) prints one line and
exits with status 2; anything else is a bug: its traceback is printed and ``drml`` exits with status 1.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from drml_ray.cli_configs import configs_app
from drml_ray.cli_data import data_app
from drml_ray.cli_support import ColumnsOption, SetOption, file_to_write, log_to_stderr, parse_columns, user_errors
from drml_ray.errors import RunExistsError, UserError
from drml_ray.runtime.registry import Command, Kind, kinds, resolve
from drml_ray.signals import sigterm_as_ctrl_c
from drml_ray.text import shell

# Every actor's progress line as it prints it (before ray is imported, which reads this once): Ray's log
# deduplication shows lines that differ only in their numbers as one (two strategies' or cells' progress as one
# "[repeated 9x across cluster]") and prints what it held back when Ray shuts down, after a command's final table.
# A value the user set is kept.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

app = typer.Typer(
    help="drml-ray: distributed NER fine-tuning, meta-learning and RL on Ray.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(shown: bool) -> None:
    """``drml --version``: drml-ray's and the versions it runs with (read from the installed packages: no import)."""
    if shown:
        from importlib.metadata import PackageNotFoundError, version

        def installed(name: str) -> str:
            try:
                return version(name)
            except PackageNotFoundError:
                return "not installed"

        used = ", ".join(f"{name} {installed(name)}" for name in ("ray", "torch", "transformers"))
        typer.echo(f"drml-ray {installed('drml-ray')} ({used}; Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _top(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the versions and exit.")
    ] = False,
) -> None:
    """drml-ray: distributed NER fine-tuning, meta-learning and RL on Ray."""


app.add_typer(data_app, name="data")
app.add_typer(configs_app, name="configs")


ConfigArg = Annotated[
    Path, typer.Argument(help="Experiment YAML: a path, or a shipped config (drml configs list), e.g. ner/smoke.")
]
OutputDir = Annotated[
    Path | None, typer.Option("--output-dir", "-o", help="Run directory [default: runs/NAME, NAME from the config].")
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace a finished run in the output directory.")]
EvalOutputDir = Annotated[
    Path | None, typer.Option("--output-dir", "-o", help="Folder for the scores [default: runs/eval-MODEL-DATA].")
]
EvalOverwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace an evaluation of the same split in the output folder.")
]
ModelDir = Annotated[Path, typer.Argument(help="A saved model folder (runs/quickstart/best) or its run directory.")]
Init = Annotated[
    str | None, typer.Option("--init", help="Meta-learned weights (weights.pt or its folder); default: OUTPUT/meta.")
]
Inits = Annotated[
    list[str] | None,
    typer.Option("--init", help="A meta-learned model folder (for every meta method), a meta-train run directory "
                 "(each method its folder in it) or METHOD=PATH; default: the folders meta-train wrote in the output "
                 "directory."),
]  # fmt: skip


def experiment_command(kind: Kind, command: Command) -> Callable[..., None]:
    """The CLI function of one registry command: load CONFIG as the kind's config, run the command."""

    def run(config: ConfigArg, set_: SetOption = None, output_dir: OutputDir = None, overwrite: Overwrite = False,
            init: Init = None, inits: Inits = None) -> None:  # fmt: skip
        from drml_ray.config import at_its_line, load_config
        from drml_ray.runtime.rundir import default_run_dir, held

        cfg = load_config(config, set_ or [], model=kind.config, check_files=True)
        _note_unread(config, cfg, kind, command)
        given = {"overwrite": overwrite, "init": init, "inits": inits or []}
        options = {name: given[name] for name in command.options}
        run_dir = output_dir or default_run_dir(cfg.name)
        with held(run_dir), at_its_line(config, set_ or [], kind.config):
            resolve(command.run)(cfg, run_dir, **options)

    signature = inspect.signature(run, eval_str=True)
    keep = [p for p in signature.parameters.values() if p.name in ("config", "set_", "output_dir", *command.options)]
    run.__signature__ = signature.replace(parameters=keep)  # type: ignore[attr-defined]
    run.__doc__ = command.help
    return user_errors(run)


def _note_unread(config: str, cfg: Any, kind: Kind, command: Command) -> None:
    """Say what of the experiment file ``command`` will not read: a ``tune`` section (``drml tune`` searches it), a
    model setting of another strategy."""
    from drml_ray.config import ModelConfig

    if kind.tune is not None and cfg.tune is not None and cfg.tune.space:
        typer.echo(f"[drml] {config}: its tune section is not searched by drml {command.name}, which runs it once "
                   f"with the values as written (drml tune {shell(config)} searches it)")  # fmt: skip
    for note in cfg.model.unused() if isinstance(getattr(cfg, "model", None), ModelConfig) else []:
        typer.echo(f"[drml] {config}: {note}")


class DefaultCommandGroup(TyperGroup):
    """A command group that runs its ``default`` command when the first argument is no command of it."""

    default: str | None = None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if self.default and args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


def _group(kind: Kind, name: str, default: str | None) -> typer.Typer:
    cls = type(f"{name.title()}Group", (DefaultCommandGroup,), {"default": default})
    group = typer.Typer(help=kind.summary, no_args_is_help=True, cls=cls)
    app.add_typer(group, name=name)
    if kind.cli is not None:
        resolve(kind.cli)(group, user_errors)
    return group


def _add_experiment_commands() -> None:
    groups: dict[str, typer.Typer] = {}
    for kind in kinds():
        for command in kind.commands:
            *group, name = command.name.split()
            target = app
            if group:
                if group[0] not in groups:
                    default = next((c.name.split()[-1] for c in kind.commands if c.default), None)
                    groups[group[0]] = _group(kind, group[0], default)
                target = groups[group[0]]
            target.command(name, epilog=f"Example: `{command.example}`")(experiment_command(kind, command))


_add_experiment_commands()


@app.command(
    epilog="Examples: `drml tune configs/tune/smoke.yaml` · `drml tune configs/tune/crossner_politics_asha.yaml "
    "--resume` · then `drml finetune runs/NAME/best_config.yaml`"
)
@user_errors
def tune(
    config: ConfigArg,
    set_: SetOption = None,
    output_dir: OutputDir = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted search in the run directory.")
    ] = False,
    overwrite: Overwrite = False,
) -> None:
    """Hyper-parameter search with Ray Tune over any experiment with a tune: section, every trial a full run of
    its kind; writes trials.csv, trials.png, best_config.yaml and the best trial's results."""
    from drml_ray.config import at_its_line, load_config
    from drml_ray.runtime.rundir import default_run_dir, held
    from drml_ray.tune.driver import run_tune

    cfg = load_config(config, set_ or [], check_files=True)
    run_dir = output_dir or default_run_dir(cfg.name)
    with held(run_dir), at_its_line(config, set_ or [], type(cfg)):
        run_tune(cfg, run_dir, resume=resume, overwrite=overwrite)


@app.command(epilog="Example: `drml tensorboard runs/tune_smoke --port 6007`")
@user_errors
def tensorboard(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (finetune or tune) or any folder of events.")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port TensorBoard serves on.")] = 6006,
    host: Annotated[str, typer.Option(help="Interface to bind (keep 127.0.0.1 unless behind a tunnel).")] = "127.0.0.1",
) -> None:
    """Serve TensorBoard over a run: train loss, learning rate and dev F1 per trial; HParams for tune runs."""
    import subprocess

    from drml_ray.serve.deploy import check_address

    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    check_address(host, port)  # (TensorBoard's own refusal is a paragraph and exit status 255)
    if not next(run_dir.rglob("events.out.tfevents.*"), None):
        typer.echo(f"[drml] {run_dir} holds no TensorBoard events yet; a run writes them as it trains", err=True)
    typer.echo(f"[drml] TensorBoard on http://{host}:{port} for {run_dir} (Ctrl-C stops it)", err=True)
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(run_dir), "--port", str(port), "--host", host]
    with subprocess.Popen(command) as server:
        try:
            code = server.wait()
        except KeyboardInterrupt:  # (Ctrl+C reaches both; SIGTERM, drml alone: stop the server either way)
            server.terminate()
            server.wait()
            typer.echo("[drml] TensorBoard stopped", err=True)
            code = 0
    raise typer.Exit(code)


@app.command(epilog="Example: `drml report runs/tune_smoke` then open runs/tune_smoke/report.html")
@user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory of any kind, a search, or an evaluation.")],
) -> None:
    """Write report.html (self-contained: figures inlined) and report.md for a run."""
    from drml_ray.report.build import write_report

    html, markdown = write_report(run_dir)
    typer.echo(f"[drml] {html}\n[drml] {markdown}")


@app.command(
    epilog="Examples: `drml evaluate runs/smoke/best runs/smoke/config.yaml` · "
    "`drml evaluate runs/conll2003/best conll2003 --split dev`"
)
@user_errors
def evaluate(
    model_dir: ModelDir,
    data: Annotated[
        str,
        typer.Argument(
            help="A corpus name (conll2003, crossner_politics, generated), a CoNLL/Parquet file, a task folder "
            "(its train, dev and test files), a folder of Parquet files (drml serve --log-requests), or a "
            "fine-tuning experiment YAML or run directory (its data section, e.g. runs/smoke)."
        ),
    ],
    split_: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="Split of a named corpus, task folder or experiment file: train, dev or test [default: test].",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Windows per forward pass.")] = 64,
    decoding: Annotated[
        str | None, typer.Option(help="argmax, or constrained (a valid IOB2 sequence) [default: the model's own].")
    ] = None,
    columns: ColumnsOption = None,
    output_dir: EvalOutputDir = None,
    overwrite: EvalOverwrite = False,
) -> None:
    """Score a saved model: seqeval entity report and token-level report, as text and JSON, and each sentence's
    predicted tags (drml report on the folder draws the type confusion and the worst sentences from them)."""
    from drml_ray.data.load import evaluation_data
    from drml_ray.ner.decoding import DECODINGS
    from drml_ray.ner.evaluate import load_saved_model, predict_and_score
    from drml_ray.ner.metrics import format_split
    from drml_ray.ner.results import write_predictions
    from drml_ray.runtime import rundir, runfiles

    split = split_ or "test"
    if decoding is not None and decoding not in DECODINGS:
        raise UserError(f"--decoding is {' or '.join(DECODINGS)}, not {decoding!r}")
    model_dir = rundir.model_folder(model_dir)  # (a folder with no model is said before the data is read)
    sentences, data_name = evaluation_data(data, split, split_ is not None, parse_columns(columns))
    saved = load_saved_model(model_dir)  # (the inputs are checked before the run directory is touched)
    saved = dataclasses.replace(saved, decoding=decoding or saved.decoding)
    run_dir = output_dir or rundir.default_run_dir(f"eval-{rundir.short_name(model_dir)}-{data_name}")
    with rundir.held(run_dir):  # (one command at a time writes into it)
        run_dir = rundir.open_run(run_dir, overwrite=overwrite, marker=f"eval_{split}.json", reads=[model_dir, data])
        scores, pred = predict_and_score(saved, sentences, batch_size)
        report = format_split(scores, split)
        runfiles.atomic_write_text(run_dir / f"report_{split}.txt", report)
        write_predictions(run_dir / f"predictions_{split}.jsonl", sentences, pred)  # (drml report's error analysis)
        record = {split: scores, "model": str(model_dir), "data": data, "decoding": saved.decoding}
        runfiles.atomic_write_json(run_dir / f"eval_{split}.json", record)
    typer.echo(report)
    typer.echo(f"[drml] entity F1 {scores['entity']['micro']['f1']:.4f}; written to {run_dir}")


@app.command(
    epilog='Examples: `drml predict runs/quickstart/best --text "Angela Merkel visited Paris."` · '
    "`drml predict runs/conll2003/best eng.testb --output preds.jsonl` (or `--input eng.testb`)"
)
@user_errors
def predict(
    model_dir: ModelDir,
    input_file: Annotated[
        Path | None, typer.Argument(help="The file to tag, as --input gives it.", show_default=False)
    ] = None,
    text: Annotated[str | None, typer.Option("--text", help="One sentence to tag.")] = None,
    input_: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="Plain text (a sentence per line, a blank line between documents), CoNLL (-DOCSTART- lines), a "
            ".parquet corpus file or a folder of them, or JSON lines, Parquet or CSV with a text column; - reads "
            "standard input.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="JSON-lines file, or .parquet: a corpus of predicted tags [default: stdout]."),
    ] = None,
    input_format: Annotated[
        str, typer.Option("--format", help="auto, text or conll (CoNLL columns, or one word a line without tags).")
    ] = "auto",
    engine: Annotated[str, typer.Option(help="auto (Ray Data from 2,000 lines), local or ray.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Windows per forward pass.")] = 64,
    dtype: Annotated[str, typer.Option(help="float32, or bfloat16 (autocast; fast with AMX/AVX512-BF16).")] = "float32",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the --output file if it exists.")] = False,
) -> None:
    """Tag entities; prints one JSON object per input line with character offsets and scores (--output X.parquet:
    a corpus of the predicted tags, as drml serve --log-requests writes)."""
    from drml_ray.ner.inputs import Inputs, read_inputs, read_stdin_inputs
    from drml_ray.ner.predict import predict_lines, write_predictions
    from drml_ray.runtime import rundir
    from drml_ray.serve.models import version
    from drml_ray.text import counted

    input_ = _predict_input(input_file, input_, text)
    _check_predict_options(text, input_format, engine, dtype)
    folder = rundir.model_folder(model_dir) if output is not None else None  # (named in the file written)
    if output is not None and folder is not None:
        _check_predict_output(output, input_, folder, overwrite)
    if text is not None:
        inputs = Inputs([text], False)
    else:
        read = read_stdin_inputs if str(input_) == "-" else functools.partial(read_inputs, input_)
        inputs = read(input_format)  # type: ignore[arg-type]
    texts = inputs.texts
    lines = predict_lines(model_dir, texts, inputs.pretokenized, engine=engine, batch_size=batch_size,  # type: ignore[arg-type]
                          documents=inputs.documents, bfloat16=dtype == "bfloat16")  # fmt: skip
    if output is None:
        for line in lines:
            typer.echo(line)
    elif folder is not None:
        model = str(folder.resolve()) if model_dir.expanduser().exists() else str(model_dir)  # (or its Hub id)
        written = write_predictions(output, lines, inputs.pretokenized, model, version(folder), inputs.documents)
        typer.echo(f"[drml] {counted(written, 'prediction')} written to {output}", err=True)


def _predict_input(argument: Path | None, option: Path | None, text: str | None) -> Path | None:
    """The file ``drml predict`` tags, given as its second argument or as ``--input`` (not both), or ``None``
    for ``--text``: exactly one of the three."""
    if argument is not None and option is not None:
        raise UserError(f"the file to tag is given twice ({argument} and --input {option}): give it once")
    given = argument if argument is not None else option
    if (text is None) == (given is None):
        raise UserError("give exactly one of --text or a file to tag (drml predict MODEL FILE, or --input FILE; "
                        "- reads standard input)")  # fmt: skip
    return given


def _check_predict_output(output: Path, input_: Path | None, model_folder: Path, overwrite: bool) -> None:
    """Refuse a ``drml predict --output`` that cannot be written, would replace what it reads, or exists (without
    ``--overwrite``), before anything is tagged; and a compressed Parquet name (JSON lines would go under it)."""
    from drml_ray.data.formats import compressed_parquet

    if compressed_parquet(output):
        raise UserError(f"{output}: Parquet compresses its own columns; name it {output.with_suffix('')} (or "
                        ".jsonl.gz for compressed JSON lines)")  # fmt: skip
    read = [input_] if input_ is not None and str(input_) != "-" else []
    file_to_write(output, "preds.jsonl", [*read, model_folder])
    if output.exists() and not overwrite:
        raise RunExistsError(f"{output} exists; pass --overwrite to replace it")


def _check_predict_options(text: str | None, input_format: str, engine: str, dtype: str) -> None:
    """Refuse a ``drml predict`` option value it has no meaning for, or a ``--text`` that is not UTF-8."""
    from drml_ray.text import not_text

    if input_format not in ("auto", "text", "conll") or engine not in ("auto", "local", "ray"):
        raise UserError("--format is auto|text|conll and --engine is auto|local|ray")
    if dtype not in ("float32", "bfloat16"):
        raise UserError(f"--dtype is float32 or bfloat16, not {dtype!r}")
    if text is not None and input_format == "conll":
        raise UserError("--format conll reads a file to tag (FILE or --input FILE); --text is one sentence of "
                        "plain text")  # fmt: skip
    problem = not_text(text) if text is not None else None
    if problem:
        raise UserError(f"--text: {problem} (is the terminal's encoding UTF-8?)")


@app.command(
    name="serve",
    epilog="Examples: `drml serve runs/quickstart` · `drml serve --model politics=runs/pol --model music=runs/mus "
    "--autoscale 1:4` · `drml serve runs/quickstart --build serve.yaml` then `serve deploy serve.yaml`",
)
@user_errors
def serve_command(
    model_dir: Annotated[str | None, typer.Argument(help="A model folder or a run directory (its best/).")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="NAME=DIR, repeatable: several models.")] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on: 127.0.0.1; in a --build file, 0.0.0.0 (every interface).")
    ] = None,
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    replicas: Annotated[int, typer.Option(help="Replicas, each holding every model.")] = 1,
    autoscale: Annotated[str | None, typer.Option(help="MIN:MAX replicas, scaled on requests in flight.")] = None,
    max_batch: Annotated[int, typer.Option(help="Requests tagged together in one batch.")] = 32,
    batch_wait_ms: Annotated[float, typer.Option(help="Longest wait for a batch to fill, in ms (0 to 10,000).")] = 5.0,
    cpus: Annotated[float, typer.Option(help="CPUs per replica (its torch threads).")] = 1.0,
    dtype: Annotated[str, typer.Option(help="float32, or bfloat16 (autocast; fast with AMX/AVX512-BF16).")] = "float32",
    max_chars: Annotated[int, typer.Option(help="Characters per text.")] = 10_000,
    max_texts: Annotated[int, typer.Option(help="Texts per request.")] = 256,
    max_body: Annotated[int, typer.Option(help="Bytes per request body.")] = 1_000_000,
    log_requests: Annotated[str | None, typer.Option(help="Keep served texts and predictions as Parquet here.")] = None,
    build: Annotated[Path | None, typer.Option(help="Write a Serve config for `serve deploy` and exit.")] = None,
    detach: Annotated[
        bool, typer.Option(help="Deploy to RAY_ADDRESS's cluster and return (a swap, if it runs).")
    ] = False,
) -> None:
    """Serve models over HTTP with Ray Serve: POST /v1/predict (the JSON of `drml predict`), GET /v1/models,
    GET /healthz, API docs at /docs. Run it again against the same Ray (RAY_ADDRESS) to swap models without
    dropping requests."""
    from drml_ray.serve.api import Limits
    from drml_ray.serve.deploy import ServeOptions, log_folder, parse_autoscale, serve_until_stopped, write_serve_config
    from drml_ray.serve.models import parse_sources

    sources = parse_sources(model_dir, model or [])
    host = host or ("0.0.0.0" if build else "127.0.0.1")  # (a cluster's proxies answer on every interface)
    opts = ServeOptions(host=host, port=port, replicas=replicas, autoscale=parse_autoscale(autoscale),
                        max_batch=max_batch, batch_wait_ms=batch_wait_ms, cpus=cpus, dtype=dtype,
                        log_requests=log_folder(log_requests, sources),
                        limits=Limits(max_chars, max_texts, max_body))  # fmt: skip
    if build is not None:
        file_to_write(build, "serve.yaml")
        write_serve_config(sources, opts, build)
        typer.echo(f"[drml] wrote {build}; deploy it with `serve deploy {build}`")
        return
    serve_until_stopped(sources, opts, detach)


@app.command(epilog="Example: `DRML_DATA_MIRROR=../shared/data drml quickstart`")
@user_errors
def quickstart(output_dir: OutputDir = None, overwrite: Overwrite = False) -> None:
    """The embedded default: fine-tune the packaged MiniLM on CrossNER politics (or a generated
    corpus when no copy is reachable) with one Ray Train worker on both cores of a local Ray, then print the
    reports and a few predictions."""
    from drml_ray.config import config_path
    from drml_ray.quickstart import run_quickstart

    run_quickstart(config_path("ner/quickstart"), output_dir, overwrite=overwrite)


def main() -> None:
    log_to_stderr(logging.INFO)
    for noisy in ("ray", "transformers", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sigterm_as_ctrl_c()
    app()
