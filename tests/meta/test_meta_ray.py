"""End to end at toy scale: meta-train (Reptile and FOMAML on Ray actors) -> meta-eval -> finetune from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from drml_ray.cli import app
from drml_ray.meta.config import METHODS

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "meta" / "smoke.yaml"
HELDOUT = "generated:PER,ORG,LOC,MISC"
FEWER = ["--set", "eval.seeds=[1]"]


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def meta_run(ray_session, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "meta_smoke"
    result = cli("meta-train", SMOKE, "--output-dir", run_dir)
    assert result.exit_code == 0, result.output
    result = cli("meta-eval", SMOKE, "--output-dir", run_dir, *FEWER)
    assert result.exit_code == 0, result.output
    return run_dir


def test_meta_train_writes_both_initialisations_with_label_name_heads(meta_run):
    record = json.loads((meta_run / "meta_train.json").read_text())
    for algorithm in ("reptile", "fomaml"):
        assert [e["step"] for e in record[algorithm]["evals"]] == [0, 3, 6]
        assert len(record[algorithm]["steps"]) == 6
        folder = meta_run / algorithm
        assert (folder / "drml_label_head.pt").is_file() and (folder / "model.safetensors").is_file()
        config = json.loads((folder / "config.json").read_text())
        assert list(config["id2label"].values()) == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG",
                                                     "B-PER", "I-PER"]  # fmt: skip
    # Meta-training moved the encoder.
    from safetensors.torch import load_file

    reptile, fomaml = (load_file(meta_run / a / "model.safetensors") for a in ("reptile", "fomaml"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(reptile[key], fomaml[key])


def test_meta_eval_table_has_every_cell_as_fractions(meta_run):
    table = json.loads((meta_run / "meta_eval.json").read_text())
    assert set(table) == {HELDOUT} and set(table[HELDOUT]) == {"10", "all"}
    for shots in ("10", "all"):
        assert set(table[HELDOUT][shots]) == set(METHODS)
        for cell in table[HELDOUT][shots].values():
            assert len(cell["f1_per_seed"]) == 1 and 0.0 <= cell["mean_f1"] <= 1.0 and cell["std_f1"] == 0.0
            assert cell["mean_f1"] == cell["f1_per_seed"][0]
    assert (meta_run / "meta_eval.png").stat().st_size > 5000
    assert "| generated:PER,ORG,LOC,MISC | all |" in (meta_run / "meta_eval.md").read_text()
    for start in ("conll", "multitask"):
        assert (meta_run / "starts" / start / "config.json").is_file()
    # What meta-train and meta-eval read, hashed: a rerun on edited task files is refused (tests/runtime/test_rundir)
    # (held out, trained on, meta-eval's CoNLL start's)
    tasks = ["generated:PER,ORG,LOC,MISC", "generated:PER,ORG", "generated:LOC,MISC", "generated:PER,LOC",
             "generated:ORG,MISC", "generated:PER,ORG,LOC"]  # fmt: skip
    hashed = json.loads((meta_run / "inputs.json").read_text())
    assert list(hashed) == [f"task {t}'s {split}" for t in tasks for split in ("train", "dev", "test")]


def test_meta_eval_rerun_skips_finished_cells_and_adds_new_seeds(meta_run):
    before = (meta_run / "meta_eval.json").read_text()
    result = cli("meta-eval", SMOKE, "--output-dir", meta_run, *FEWER)
    assert result.exit_code == 0, result.output
    assert "10 already there, skipped" in result.output and "[1/" not in result.output
    assert (meta_run / "meta_eval.json").read_text() == before
    result = cli("meta-eval", SMOKE, "--output-dir", meta_run, "--set", "eval.seeds=[1,2]",
                 "--set", "eval.methods=[direct,reptile]", "--set", "eval.shots=[10]")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "[2/2]" in result.output and "[3/" not in result.output
    cell = json.loads((meta_run / "meta_eval.json").read_text())[HELDOUT]["10"]["reptile"]
    assert cell["seeds"] == [1, 2] and len(cell["f1_per_seed"]) == 2


def test_cells_of_more_shots_than_train_sentences_are_computed_once(meta_run, tmp_path):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(meta_run, run_dir)
    # The held-out task's train-split size, as its all-shot cell recorded it.
    train = json.loads((meta_run / "meta_eval.json").read_text())[HELDOUT]["all"]["direct"]["runs"]["1"]["shots"]
    big = train + 50
    # Seed 1's all-shot cell is there: a bigger K-shot cell is a copy of it, and nothing is computed.
    result = cli("meta-eval", SMOKE, "--output-dir", run_dir, "--set", f"eval.shots=[{big}]",
                 "--set", "eval.methods=[direct]", *FEWER)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"the train split has {train} sentences, so this is the all-shot cell" in result.output
    assert "[1/" not in result.output
    table = json.loads((run_dir / "meta_eval.json").read_text())[HELDOUT]
    assert table[str(big)]["direct"]["f1_per_seed"] == table["all"]["direct"]["f1_per_seed"]
    assert table[str(big)]["direct"]["runs"]["1"]["same_as"] == "all"
    # A new seed: the K-shot cell and the all-shot cell are computed once, recorded under both keys.
    result = cli("meta-eval", SMOKE, "--output-dir", run_dir, "--set", f"eval.shots=[{big},all]",
                 "--set", "eval.methods=[direct]", "--set", "eval.seeds=[3]")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "[1/1]" in result.output and f"the same cell as all shots: the train split has {train}" in result.output
    table = json.loads((run_dir / "meta_eval.json").read_text())[HELDOUT]
    assert table[str(big)]["direct"]["runs"]["3"]["f1"] == table["all"]["direct"]["runs"]["3"]["f1"]


def test_meta_eval_without_a_meta_trained_model_says_what_to_run(ray_session, tmp_path):
    result = cli("meta-eval", SMOKE, "--output-dir", tmp_path / "empty", "--set", "eval.methods=[reptile]")
    assert result.exit_code == 2
    assert "no meta-trained reptile model; run `drml meta-train`" in result.output
    assert not (tmp_path / "empty").exists()  # nothing written before the inputs are known good


def test_finetune_accepts_the_meta_learned_model(meta_run, tmp_path):
    result = cli("finetune", REPO / "configs" / "ner" / "smoke.yaml", "--output-dir", tmp_path / "ft",
                 "--set", f"model.backbone={meta_run / 'reptile'}", "--set", "train.epochs=1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ft" / "best" / "config.json").is_file()


def test_report_of_a_meta_run(meta_run):
    result = cli("report", meta_run)
    assert result.exit_code == 0, result.output
    page, markdown = (meta_run / "report.html").read_text(), (meta_run / "report.md").read_text()
    assert "held-out dev F1 at the end" in page and "multitask_then_finetune" in page
    assert "meta_eval.png" in markdown and "report_meta_train.png" in markdown
    assert page.count("data:image/png;base64,") == 2


def test_meta_train_resumes_from_its_checkpoints_and_refuses_a_finished_run(meta_run, tmp_path):
    import shutil

    result = cli("meta-train", SMOKE, "--output-dir", meta_run)
    assert result.exit_code == 2 and "holds a finished run (meta_train.json exists)" in result.output
    copy = tmp_path / "interrupted"
    shutil.copytree(meta_run, copy)
    # As if stopped during FOMAML, after its meta-step 3 checkpoint: the result file is not written yet.
    (copy / "meta_train.json").unlink()
    shutil.rmtree(copy / "fomaml")
    state = torch.load(copy / "fomaml.state.pt", weights_only=False)
    state["step"], state["record"]["steps"] = 3, state["record"]["steps"][:3]
    state["record"]["evals"] = state["record"]["evals"][:2]
    torch.save(state, copy / "fomaml.state.pt")
    result = cli("meta-train", SMOKE, "--output-dir", copy)
    assert result.exit_code == 0, result.output
    assert "reptile: resuming at meta-step 6" in result.output and "fomaml: resuming at meta-step 3" in result.output
    assert "fomaml meta-step 1/6" not in result.output and "fomaml meta-step 4/6" in result.output
    record = json.loads((copy / "meta_train.json").read_text())
    assert [e["step"] for e in record["fomaml"]["evals"]] == [0, 3, 6] and (copy / "fomaml" / "config.json").is_file()


def test_one_actor_holding_theta_meta_trains_as_two_actors_given_theta_do(meta_run, tmp_path):
    """With one worker the actor keeps theta and the outer optimizer (FOMAML's Adam state too) for six meta-steps
    and hands them back for the checkpoints at steps 3 and 6 and the export: the same losses, held-out scores and
    weights as the smoke run's two actors (up to the order of the sums)."""
    from safetensors.torch import load_file

    result = cli("meta-train", SMOKE, "--output-dir", tmp_path / "one", "--set", "meta.workers=1")
    assert result.exit_code == 0, result.output
    one, two = (json.loads((d / "meta_train.json").read_text()) for d in (tmp_path / "one", meta_run))
    for algorithm in ("reptile", "fomaml"):
        assert [e["heldout_dev_f1"] for e in one[algorithm]["evals"]] == [e["heldout_dev_f1"] for e in
                                                                          two[algorithm]["evals"]]  # fmt: skip
        losses = [[s["query_loss"] for s in r[algorithm]["steps"]] for r in (one, two)]
        assert losses[0] == pytest.approx(losses[1], abs=1e-5) and len(losses[0]) == 6
        held, given = (load_file(d / algorithm / "model.safetensors") for d in (tmp_path / "one", meta_run))
        assert all(torch.allclose(held[k], given[k], atol=1e-5) for k in given), algorithm


def test_one_actor_holding_theta_resumes_with_its_optimizer_state(ray_session, tmp_path):
    """Stopped after FOMAML's meta-step 3 checkpoint (Adam's moments fetched from the actor) and run again, one
    actor holding theta ends on exactly the weights of a run never stopped: the moments went to the checkpoint and
    back to the actor."""
    from safetensors.torch import load_file

    from drml_ray.config import load_config
    from drml_ray.meta.config import MetaExperiment
    from drml_ray.meta.driver import run_meta_train

    cfg = load_config(SMOKE, ["meta.workers=1", "meta.algorithms=[fomaml]"], model=MetaExperiment)
    run_meta_train(cfg, tmp_path / "whole")

    def stop_before_the_last_checkpoint(algorithm: str, step: int, mean_f1: float) -> None:
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_meta_train(cfg, tmp_path / "stopped", on_eval=stop_before_the_last_checkpoint)
    assert torch.load(tmp_path / "stopped" / "fomaml.state.pt", weights_only=True)["step"] == 3
    run_meta_train(cfg, tmp_path / "stopped")
    whole, resumed = (load_file(tmp_path / d / "fomaml" / "model.safetensors") for d in ("whole", "stopped"))
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


@pytest.mark.parametrize("workers", [2, 1])
def test_one_reptile_step_moves_theta_to_the_mean_of_the_adapted_weights(ray_session, tmp_path, workers):
    """A known answer: with meta_lr 1, SGD and no decay, Reptile's first step sets theta to the mean of the
    meta-batch's adapted weights, theta - 1 * mean(theta - phi_i). The episodes are adapted again here, in
    this process, and the encoder that `drml meta-train` exported (on its Ray actors) must be that mean:
    with theta broadcast to two actors, and with one actor holding theta and taking the step itself."""
    from safetensors.torch import load_file

    from drml_ray.config import load_config
    from drml_ray.meta.config import MetaExperiment
    from drml_ray.meta.driver import episode_jobs
    from drml_ray.meta.learner import ENCODER, NerLearner
    from drml_ray.metagrad import mean_gradient

    sets = ["meta.algorithms=[reptile]", "meta.meta_steps=1", "meta.meta_lr_decay=false", "meta.meta_batch=3",
            "meta.eval_every=1", f"meta.workers={workers}"]  # fmt: skip
    result = cli("meta-train", SMOKE, "--output-dir", tmp_path / "one", *[a for s in sets for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    cfg = load_config(SMOKE, sets, model=MetaExperiment)
    learner = NerLearner(cfg.model, cfg.data, cfg.seed)
    theta = learner.meta_state()
    grads = [learner.episode_gradient(theta, learner.task(spec), seed, cfg.meta, "reptile")[0]
             for spec, seed in episode_jobs(cfg, 0)]  # fmt: skip
    step = mean_gradient(grads)  # mean(theta - phi_i)
    exported = load_file(tmp_path / "one" / "reptile" / "model.safetensors")
    moved = 0
    for name, value in theta.items():
        if name.startswith(ENCODER):
            expected = value - step[name]
            assert torch.allclose(exported[name.removeprefix(ENCODER)], expected, atol=1e-5), name
            moved += int(not torch.equal(expected, value))
    assert moved > 10  # the encoder really moved, towards the adapted weights
