"""The ``drml`` command.

Every command that writes takes ``--output-dir`` (default ``runs/<experiment name>``) and refuses to
overwrite a finished run unless ``--overwrite`` is given. Errors in user input (configs, corpora,
paths) are printed as one clear message and exit with status 2.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from drml_ray.config import ConfigError
from drml_ray.data.conll import CorpusFormatError
from drml_ray.data.fetch import FetchError
from drml_ray.runs import RunExistsError, RunInterrupted

app = typer.Typer(
    help="drml-ray: distributed NER fine-tuning and meta-learning on Ray.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Corpora: list, fetch into the cache, convert between formats.", no_args_is_help=True)
app.add_typer(data_app, name="data")
rl_app = typer.Typer(
    help="Meta-RL and transfer on RLlib: Reptile over PPO, adaptation curves, transfer metrics.", no_args_is_help=True
)
app.add_typer(rl_app, name="rl")

USER_ERRORS = (ConfigError, CorpusFormatError, FetchError, RunExistsError, FileNotFoundError, KeyError, ValueError)
REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"

OutputDir = Annotated[
    Path | None, typer.Option("--output-dir", "-o", help="Run directory [default: runs/NAME, NAME from the config].")
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace a finished run in the output directory.")]


SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config key: --set train.epochs=3 (repeatable).")
]
ModelDir = Annotated[Path, typer.Argument(help="A saved model folder, e.g. runs/quickstart/best.")]


def user_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Print a user-input error (bad config, corpus, path) as one line and exit with status 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs) -> None:
        try:
            command(*args, **kwargs)
        except USER_ERRORS as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            typer.secho(f"drml: error: {message}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except RunInterrupted as err:
            typer.secho(f"drml: interrupted: {err}", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(130) from None

    return wrapper


@app.command(epilog="Example: `drml finetune configs/ner/smoke.yaml --set train.epochs=2 --set model.strategy=lora`")
@user_errors
def finetune(
    config: Annotated[Path, typer.Argument(help="Experiment YAML, e.g. configs/ner/conll2003.yaml.")],
    set_: SetOption = None,
    output_dir: OutputDir = None,
    overwrite: Overwrite = False,
) -> None:
    """Fine-tune a token-classification model on Ray Train; writes best/, reports and results.json."""
    from drml_ray.config import load_config
    from drml_ray.ner.finetune import run_finetune
    from drml_ray.runs import default_run_dir

    cfg = load_config(config, set_ or [])
    run_finetune(cfg, output_dir or default_run_dir(cfg.name), overwrite=overwrite)


@app.command(
    epilog="Examples: `drml tune configs/tune/smoke.yaml` · `drml tune configs/tune/crossner_politics_asha.yaml "
    "--resume` · then `drml finetune runs/NAME/best_config.yaml`"
)
@user_errors
def tune(
    config: Annotated[Path, typer.Argument(help="Experiment YAML with a tune: section, e.g. configs/tune/smoke.yaml.")],
    set_: SetOption = None,
    output_dir: OutputDir = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted search in the run directory.")
    ] = False,
    overwrite: Overwrite = False,
) -> None:
    """Hyper-parameter search with Ray Tune, every trial a distributed Ray Train run; writes trials.csv,
    trials.png, best_config.yaml, and the best trial's model in best/ with its reports."""
    from drml_ray.config import load_config
    from drml_ray.runs import default_run_dir
    from drml_ray.tune.driver import run_tune

    cfg = load_config(config, set_ or [])
    run_tune(cfg, output_dir or default_run_dir(cfg.name), resume=resume, overwrite=overwrite)


@app.command(
    "meta-train",
    epilog="Examples: `drml meta-train configs/meta/smoke.yaml` · "
    "`drml meta-train configs/meta/crossner_politics.yaml --set meta.algorithms=[reptile]`",
)
@user_errors
def meta_train(
    config: Annotated[Path, typer.Argument(help="Meta-learning YAML (a meta: section), e.g. configs/meta/smoke.yaml.")],
    set_: SetOption = None,
    output_dir: OutputDir = None,
    overwrite: Overwrite = False,
) -> None:
    """Meta-train Reptile / first-order MAML over NER tasks on Ray actors; writes one Hugging Face folder per
    algorithm (its head built from the held-out labels' names) that `drml finetune` accepts as its backbone.
    An interrupted run continues from its last checkpoint when started again."""
    from drml_ray.config import MetaExperiment, load_config
    from drml_ray.meta.driver import run_meta_train
    from drml_ray.runs import default_run_dir

    cfg = load_config(config, set_ or [], model=MetaExperiment)
    run_meta_train(cfg, output_dir or default_run_dir(cfg.name), overwrite=overwrite)


@app.command(
    "meta-eval",
    epilog="Examples: `drml meta-eval configs/meta/smoke.yaml` · `drml meta-eval configs/meta/crossner_politics.yaml "
    "--set eval.shots=[10,50,all] --set eval.seeds=[1]` · `--init reptile=runs/x/reptile`",
)
@user_errors
def meta_eval(
    config: Annotated[Path, typer.Argument(help="The meta-learning YAML given to drml meta-train.")],
    set_: SetOption = None,
    output_dir: OutputDir = None,
    init: Annotated[
        list[str] | None,
        typer.Option(
            "--init",
            help="A meta-learned model folder (for every meta method) or METHOD=PATH; "
            "default: the folders meta-train wrote in the output directory.",
        ),
    ] = None,
) -> None:
    """Adapt every starting point (direct, CoNLL then fine-tune, multi-task, Reptile, FOMAML) on each held-out
    domain x shot count x seed with the same budget, score test F1; writes meta_eval.json (cell by cell: a
    rerun skips finished cells), meta_eval.md and meta_eval.png."""
    from drml_ray.config import MetaExperiment, load_config
    from drml_ray.meta.driver import run_meta_eval
    from drml_ray.runs import default_run_dir

    cfg = load_config(config, set_ or [], model=MetaExperiment)
    run_meta_eval(cfg, output_dir or default_run_dir(cfg.name), inits=init or [])


RLConfig = Annotated[
    Path, typer.Argument(help="RL experiment YAML (env:/ppo: sections), e.g. configs/rl/smoke_nav2d.yaml.")
]


def _rl_config(config: Path, overrides: list[str] | None):  # noqa: ANN202 - RLExperiment, imported lazily
    from drml_ray.config import RLExperiment, load_config

    return load_config(config, overrides or [], model=RLExperiment)


@rl_app.command(
    "meta-train",
    epilog="Examples: `drml rl meta-train configs/rl/smoke_nav2d.yaml` · "
    "`drml rl meta-train configs/rl/nav2d.yaml --set meta.workers=4 --set meta.methods=[meta]`",
)
@user_errors
def rl_meta_train(config: RLConfig, set_: SetOption = None, output_dir: OutputDir = None,
                  overwrite: Overwrite = False) -> None:  # fmt: skip
    """Reptile over RLlib PPO weights across a task family (each meta-batch's tasks adapt in parallel on Ray
    actors), plus the multi-task and RL² baselines on the same environment steps; writes meta/, multitask/,
    rl2/ weights and meta_train.json. An interrupted run continues from its last checkpoint."""
    from drml_ray.rl.driver import run_rl_meta_train
    from drml_ray.runs import default_run_dir

    cfg = _rl_config(config, set_)
    run_rl_meta_train(cfg, output_dir or default_run_dir(cfg.name), overwrite=overwrite)


@rl_app.command(
    "meta-eval",
    epilog="Examples: `drml rl meta-eval configs/rl/smoke_nav2d.yaml` · `--init runs/x/meta/weights.pt`",
)
@user_errors
def rl_meta_eval(
    config: RLConfig,
    set_: SetOption = None,
    output_dir: OutputDir = None,
    init: Annotated[
        str | None,
        typer.Option("--init", help="Meta-learned weights (weights.pt or its folder); default: OUTPUT/meta."),
    ] = None,
) -> None:
    """Return on held-out tasks before and after 1..k PPO iterations of adaptation for the meta-learned, multi-task,
    RL², scratch and oracle policies over seeds; writes adaptation.json (episode_return_mean,
    episode_return_mean_adapt_N, adaptation_delta), adaptation.md and adaptation.png. Reruns keep finished curves."""
    from drml_ray.rl.driver import run_rl_meta_eval
    from drml_ray.runs import default_run_dir

    cfg = _rl_config(config, set_)
    run_rl_meta_eval(cfg, output_dir or default_run_dir(cfg.name), init=init)


@rl_app.command("transfer", epilog="Example: `drml rl transfer configs/rl/smoke_transfer.yaml`")
@user_errors
def rl_transfer(config: RLConfig, set_: SetOption = None, output_dir: OutputDir = None,
                overwrite: Overwrite = False) -> None:  # fmt: skip
    """Train PPO on a source task, fine-tune on a target, against the target from scratch, over seeds; writes
    transfer.json (jumpstart, time to threshold, asymptotic, total-reward ratio), transfer.md and transfer.png."""
    from drml_ray.rl.transfer import run_rl_transfer
    from drml_ray.runs import default_run_dir

    cfg = _rl_config(config, set_)
    run_rl_transfer(cfg, output_dir or default_run_dir(cfg.name), overwrite=overwrite)


@app.command(epilog="Example: `drml tensorboard runs/tune_smoke --port 6007`")
@user_errors
def tensorboard(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (finetune or tune) or any folder of events.")],
    port: Annotated[int, typer.Option(help="Port TensorBoard serves on.")] = 6006,
    host: Annotated[str, typer.Option(help="Interface to bind (keep 127.0.0.1 unless behind a tunnel).")] = "127.0.0.1",
) -> None:
    """Serve TensorBoard over a run: train loss, learning rate and dev F1 per trial; HParams for tune runs."""
    import subprocess

    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    typer.echo(f"[drml] TensorBoard on http://{host}:{port} for {run_dir} (Ctrl-C stops it)", err=True)
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(run_dir), "--port", str(port), "--host", host]
    raise typer.Exit(subprocess.call(command))


@app.command(epilog="Example: `drml report runs/tune_smoke` then open runs/tune_smoke/report.html")
@user_errors
def report(run_dir: Annotated[Path, typer.Argument(help="A finished run directory (finetune or tune).")]) -> None:
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
            help="A corpus name (conll2003, crossner_politics, generated), a CoNLL/Parquet file, "
            "or an experiment YAML (its data section, e.g. runs/smoke/config.yaml)."
        ),
    ],
    split: Annotated[str, typer.Option(help="Split of a named corpus: train, dev or test.")] = "test",
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 64,
    output_dir: OutputDir = None,
    overwrite: Overwrite = False,
) -> None:
    """Score a saved model: seqeval entity report and token-level report, as text and JSON."""
    from drml_ray.config import DataConfig, load_config
    from drml_ray.data.conll import read_corpus_file
    from drml_ray.data.load import load_corpus
    from drml_ray.ner.evaluate import evaluate_sentences, load_saved_model
    from drml_ray.ner.metrics import format_split
    from drml_ray.runs import atomic_write_json, atomic_write_text, default_run_dir, prepare_run_dir

    if split not in ("train", "dev", "test"):
        raise ValueError(f"--split must be train, dev or test, not {split!r}")
    if data.endswith((".yaml", ".yml")):  # an experiment file: its data section
        cfg = load_config(data)
        sentences, data_name = load_corpus(cfg.data).splits[split], cfg.name
    elif Path(data).is_file():
        sentences, data_name = read_corpus_file(data), Path(data).stem
    else:
        sentences, data_name = load_corpus(DataConfig(corpus=data)).splits[split], data
    name = f"eval-{Path(model_dir).resolve().parent.name}-{data_name}-{split}"
    run_dir = prepare_run_dir(output_dir or default_run_dir(name), overwrite=overwrite, marker=f"eval_{split}.json")
    scores = evaluate_sentences(load_saved_model(model_dir), sentences, batch_size=batch_size)
    report = format_split(scores, split)
    atomic_write_text(run_dir / f"report_{split}.txt", report)
    atomic_write_json(run_dir / f"eval_{split}.json", {split: scores, "model": str(model_dir), "data": data})
    typer.echo(report)
    typer.echo(f"[drml] entity F1 {scores['entity']['micro']['f1']:.4f}; written to {run_dir}")


@app.command(
    epilog='Examples: `drml predict runs/quickstart/best --text "Angela Merkel visited Paris."` · '
    "`drml predict runs/conll2003/best --input eng.testb --output preds.jsonl`"
)
@user_errors
def predict(
    model_dir: ModelDir,
    text: Annotated[str | None, typer.Option("--text", help="One sentence to tag.")] = None,
    input_: Annotated[Path | None, typer.Option("--input", help="Plain text (a sentence per line) or CoNLL.")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="JSON-lines file [default: stdout].")] = None,
    input_format: Annotated[str, typer.Option("--format", help="auto, text or conll.")] = "auto",
    engine: Annotated[str, typer.Option(help="auto (Ray Data from 2,000 lines), local or ray.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 64,
    overwrite: Overwrite = False,
) -> None:
    """Tag entities; prints one JSON object per input line with character offsets and scores."""
    from drml_ray.ner.predict import predict_lines, read_inputs
    from drml_ray.runs import atomic_write_text

    if (text is None) == (input_ is None):
        raise ValueError("give exactly one of --text or --input")
    if input_format not in ("auto", "text", "conll") or engine not in ("auto", "local", "ray"):
        raise ValueError("--format is auto|text|conll and --engine is auto|local|ray")
    if output is not None and output.exists() and not overwrite:
        raise RunExistsError(f"{output} exists; pass --overwrite to replace it")
    texts, pretokenized = ([text], False) if text is not None else read_inputs(input_, input_format)  # type: ignore[arg-type]
    lines = predict_lines(model_dir, texts, pretokenized, engine=engine, batch_size=batch_size)  # type: ignore[arg-type]
    if output is None:
        for line in lines:
            typer.echo(line)
    else:
        atomic_write_text(output, "".join(f"{line}\n" for line in lines))
        typer.echo(f"[drml] {len(texts):,} predictions written to {output}", err=True)


@app.command(epilog="Example: `DRML_DATA_MIRROR=../shared/data drml quickstart`")
@user_errors
def quickstart(output_dir: OutputDir = None, overwrite: Overwrite = False) -> None:
    """The embedded default: fine-tune the packaged MiniLM on CrossNER politics (or a generated
    corpus when no copy is reachable) with 2 Ray Train workers on a local Ray, then print the
    reports and a few predictions."""
    from drml_ray.quickstart import run_quickstart

    run_quickstart(REPO_CONFIGS / "ner" / "quickstart.yaml", output_dir, overwrite=overwrite)


@data_app.command("list")
def data_list() -> None:
    """The corpora drml-ray can fetch by name, and whether each is in the cache."""
    from drml_ray.data.fetch import cached_paths, data_dir
    from drml_ray.data.registry import CORPORA

    typer.echo(f"cache: {data_dir()}  (DRML_DATA_DIR)   mirror: {os.environ.get('DRML_DATA_MIRROR') or '-'}")
    for spec in CORPORA.values():
        state = "cached" if cached_paths(spec) else "not cached"
        typer.echo(f"{spec.name:22} {state:11} {spec.scheme}  {spec.description}; licence: {spec.licence}")
    typer.echo(f"{'generated':22} {'built-in':11} iob2  template sentences (PER, ORG, LOC, MISC) for tests")


@data_app.command(
    "fetch", epilog="Examples: `drml data fetch crossner_politics` · `drml data fetch conll2003 --source ~/conll`"
)
@user_errors
def data_fetch(
    name: Annotated[str, typer.Argument(help="A corpus name (drml data list), or 'crossner' for all five domains.")],
    source: Annotated[
        str | None, typer.Option(help="A folder or URL holding the files (beats DRML_DATA_MIRROR).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Fetch again even if cached.")] = False,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Cache folder [default: DRML_DATA_DIR].")
    ] = None,
) -> None:
    """Download (or copy from a mirror) a corpus into the cache, verifying sha256."""
    from drml_ray.data.fetch import fetch
    from drml_ray.data.registry import CROSSNER_DOMAINS, get_spec

    if output_dir is not None:
        os.environ["DRML_DATA_DIR"] = str(output_dir)
    names = [f"crossner_{d}" for d in CROSSNER_DOMAINS] if name == "crossner" else [name]
    for corpus in names:
        paths = fetch(get_spec(corpus), source=source, force=force)
        for split, path in paths.items():
            typer.echo(f"{corpus} {split}: {path}")


@data_app.command("convert", epilog="Example: `drml data convert eng.train train.parquet --from-scheme iob1`")
@user_errors
def data_convert(
    source: Annotated[Path, typer.Argument(help="A CoNLL or .parquet corpus file.")],
    dest: Annotated[Path, typer.Argument(help="Output: .parquet for Parquet, anything else for CoNLL columns.")],
    from_scheme: Annotated[str, typer.Option(help="Tag scheme of SOURCE: iob1 or iob2.")] = "iob2",
    overwrite: Overwrite = False,
) -> None:
    """Convert a corpus between CoNLL columns and Parquet; IOB1 input is rewritten as IOB2."""
    from drml_ray.data.conll import read_corpus_file, write_conll
    from drml_ray.data.parquet import write_parquet

    if from_scheme not in ("iob1", "iob2"):
        raise ValueError(f"--from-scheme must be iob1 or iob2, not {from_scheme!r}")
    if dest.exists() and not overwrite:
        raise RunExistsError(f"{dest} exists; pass --overwrite to replace it")
    sentences = read_corpus_file(source, scheme=from_scheme)  # type: ignore[arg-type]
    (write_parquet if dest.suffix == ".parquet" else write_conll)(dest, sentences)
    typer.echo(f"[drml] {len(sentences):,} sentences -> {dest} (IOB2)")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[drml] %(message)s", stream=sys.stderr)
    for noisy in ("ray", "transformers", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app()
