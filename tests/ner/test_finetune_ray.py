"""End-to-end runs on Ray Train (2 workers, tiny random BERT, generated corpus), sharing one Ray."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from drml_ray.checkpoints import STATE_FILE, load_state
from drml_ray.cli import app
from drml_ray.config import load_config
from drml_ray.errors import UserError
from drml_ray.ner.finetune import run_finetune
from drml_ray.ner.modeling import build_model, load_tokenizer
from drml_ray.ner.train_record import RAY_SNAPSHOT, listed_checkpoints, recover_record
from tests.helpers import FailOnce, chromium_dom
from tests.test_checkpoints import malicious

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "ner" / "smoke.yaml"
STEPS_PER_EPOCH = 240 // 16  # smoke: 240 generated training sentences, global batch 16


def cli(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def smoke_run(ray_session, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "smoke"
    result = cli("finetune", SMOKE, "--output-dir", run_dir, "--set", "train.epochs=12", "--set", "train.patience=1",
                 "--set", "train.eval_test=true")  # fmt: skip
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="module")
def straight_run(ray_session, tmp_path_factory) -> dict:
    """A 2-epoch smoke run never interrupted: what a restarted or resumed run must train exactly as."""
    return run_finetune(load_config(SMOKE, ["train.epochs=2"]), tmp_path_factory.mktemp("runs") / "straight")


def same_training(results: dict, straight: dict) -> None:
    for resumed, plain in zip(results["history"], straight["history"], strict=True):
        assert (resumed["train_loss"], resumed["dev_f1"]) == pytest.approx((plain["train_loss"], plain["dev_f1"]),
                                                                           rel=1e-6)  # fmt: skip


def test_run_directory_layout(smoke_run):
    for name in ("config.yaml", "results.json", "report_dev.txt", "report_test.txt",
                 "best/config.json", "best/model.safetensors", "best/tokenizer.json"):  # fmt: skip
        assert (smoke_run / name).is_file(), name
    assert list((smoke_run / "tensorboard").glob("events.out.tfevents.*"))
    assert load_config(smoke_run / "config.yaml").train.epochs == 12  # the resolved config, overrides applied
    report = (smoke_run / "report_test.txt").read_text()
    assert "entity level" in report and "token level" in report


def test_a_local_ray_runs_no_preemption_watcher(smoke_run):
    from ray.util.state import list_actors

    train_actors = {a.class_name for a in list_actors(limit=1000, raise_on_missing_output=False)}
    assert "RayTrainWorker" in train_actors and "PreemptionWatcher" not in train_actors


def test_results_json_shape_and_early_stopping(smoke_run):
    results = json.loads((smoke_run / "results.json").read_text())
    for split in ("dev", "test"):
        entity, token = results[split]["entity"], results[split]["token"]
        assert set(entity) == {"micro", "macro", "weighted", "per_type"}
        assert set(entity["per_type"]) == {"PER", "ORG", "LOC", "MISC"}
        assert set(token["per_tag"]) >= {"O", "B-PER", "I-PER"}
        assert all(0.0 <= entity[a]["f1"] <= 1.0 for a in ("micro", "macro", "weighted"))
    assert results["data"] == results["data"] | {"generated": True, "sizes": {"train": 240, "dev": 60, "test": 60}}
    history = results["history"]
    assert history[-1]["stopped_early"] and len(history) < 12  # patience 1 ended it before epoch 12
    best = max(history, key=lambda h: h["dev_f1"])
    assert results["best_epoch"] == best["epoch"]
    assert results["test"]["entity"]["micro"]["f1"] > 0.5  # it learned something
    assert results["train"]["tokens_per_s"] > 0 and results["train"]["wall_s"] > 0


def test_report_of_a_finetune_run_shows_figures_and_highlighted_errors(smoke_run):
    from drml_ray.report.ner_errors import entity_spans, worst_sentences

    assert cli("report", smoke_run).exit_code == 0
    rows = [json.loads(line) for line in (smoke_run / "predictions_test.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and all(len(r["tokens"]) == len(r["gold"]) == len(r["pred"]) for r in rows)
    worst = worst_sentences(rows, k=10)
    marks = sum(len(entity_spans(w["gold"])) + len(entity_spans(w["pred"])) for w in worst)
    assert worst and "errors\n  - gold: [" in (smoke_run / "report.md").read_text()
    dom = chromium_dom(smoke_run / "report.html")  # curves, per-type bars, confusion matrix; every mark drawn
    assert 'data-figures="3"' in dom and 'data-rendered="3"' in dom and f'data-highlights="{marks}"' in dom


def test_token_report_support_is_the_word_count(smoke_run):
    from drml_ray.data.generated import generate_sentences

    results = json.loads((smoke_run / "results.json").read_text())
    n_words = sum(len(s.tokens) for s in generate_sentences(60, 13 + 2))  # the generated test split
    assert results["test"]["token"]["micro"]["support"] == n_words


def test_f1_gathered_from_two_workers_equals_single_process_f1(smoke_run):
    results = json.loads((smoke_run / "results.json").read_text())
    best = max(results["history"], key=lambda h: h["dev_f1"])  # scored on 2 workers during training
    assert results["dev"]["entity"]["micro"]["f1"] == pytest.approx(best["dev_f1"], abs=1e-12)  # best/ in 1 process
    # train.eval_test: the test curve, scored the same way, meets the exported model's test score at the best epoch
    assert results["test"]["entity"]["micro"]["f1"] == pytest.approx(best["test_f1"], abs=1e-12)
    assert all(0.0 <= h["test_f1"] <= 1.0 for h in results["history"])
    from huggingface_hub import ModelCard

    card = ModelCard.load(smoke_run / "best" / "README.md")  # the model card carries the same test score
    f1 = next(r.metric_value for r in card.data.eval_results if r.metric_type == "f1")
    assert f1 == round(results["test"]["entity"]["micro"]["f1"], 4)


def test_saved_model_loads_with_plain_transformers_pipeline(smoke_run):
    from transformers import pipeline

    ner = pipeline("token-classification", model=str(smoke_run / "best"), aggregation_strategy="first")
    entities = ner("Anna Schmidt joined Siemens in Berlin .")
    assert {e["entity_group"] for e in entities} <= {"PER", "ORG", "LOC", "MISC"}
    assert entities


def test_workers_a_local_ray_cannot_hold_are_refused_before_anything_is_written(ray_session, tmp_path):
    # (Ray Train waited for them forever, printing nothing: 8 workers on 2 cores, a GPU on a laptop)
    for setting, short in (("scaling.num_workers=8", "needs 8 CPUs"), ("scaling.use_gpu=true", "needs 2 GPUs")):
        result = cli("finetune", SMOKE, "--output-dir", tmp_path / "run", "--set", setting)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert f"{short}, and this Ray has 4 CPUs and 0 GPUs: lower scaling.num_workers" in result.output
        assert not (tmp_path / "run").exists()


def test_finished_run_is_not_overwritten(smoke_run):
    before = (smoke_run / "results.json").read_text()
    result = cli("finetune", SMOKE, "--output-dir", smoke_run)
    assert result.exit_code == 2
    assert "finished run" in result.output and "--overwrite" in result.output
    assert (smoke_run / "results.json").read_text() == before


def test_evaluate_command_matches_the_run(smoke_run, tmp_path):
    result = cli("evaluate", smoke_run / "best", smoke_run / "config.yaml", "--output-dir", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    scored = json.loads((tmp_path / "ev" / "eval_test.json").read_text())["test"]
    results = json.loads((smoke_run / "results.json").read_text())
    assert scored["entity"]["micro"]["f1"] == pytest.approx(results["test"]["entity"]["micro"]["f1"])
    assert json.loads((smoke_run / "best" / "config.json").read_text())["drml"]["decoding"] == "constrained"
    result = cli("evaluate", smoke_run / "best", smoke_run / "config.yaml", "--output-dir", tmp_path / "argmax",
                 "--decoding", "argmax")  # fmt: skip
    assert result.exit_code == 0, result.output
    argmax = json.loads((tmp_path / "argmax" / "eval_test.json").read_text())
    assert argmax["decoding"] == "argmax"
    assert cli("evaluate", smoke_run / "best", "generated", "--decoding", "viterbi").exit_code == 2


def test_a_run_with_document_context_and_word_shapes_is_scored_and_reloaded_with_the_same_windows(
    ray_session, tmp_path
):
    from drml_ray.data.load import load_corpus
    from drml_ray.ner.evaluate import load_saved_model, predict_tags

    # Trained on windows cut from whole documents; scored (in the loop and after) on a window per sentence.
    cfg = load_config(SMOKE, ["data.context=true", "data.context_train=document", "train.epochs=1",
                              "data.generated.train=64", "model.casing=shape"])  # fmt: skip
    results = run_finetune(cfg, tmp_path / "ctx")
    saved = load_saved_model(tmp_path / "ctx" / "best")
    assert saved.context and saved.casing  # in config.json's drml section, for drml evaluate, predict and serve
    # Training gave the shapes their own rows: read as lower case, the same words score otherwise.
    words = [s.tokens for s in load_corpus(cfg.data).splits["dev"][:8]]
    assert predict_tags(saved, words)[1] != predict_tags(dataclasses.replace(saved, casing=False), words)[1]
    run = tmp_path / "ctx"
    result = cli("evaluate", run / "best", run / "config.yaml", "--output-dir", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    scored = json.loads((tmp_path / "ev" / "eval_test.json").read_text())["test"]
    assert scored["entity"]["micro"]["f1"] == pytest.approx(results["test"]["entity"]["micro"]["f1"])
    test = load_corpus(cfg.data).splits["test"][:8]  # two generated documents of four sentences
    _, with_context = predict_tags(saved, [s.tokens for s in test], documents=[s.doc for s in test])
    _, alone = predict_tags(saved, [s.tokens for s in test])
    assert with_context != alone


def test_predict_command_offsets_and_ray_data_engine(smoke_run, tmp_path):
    lines = "Anna Schmidt joined Siemens in Berlin.\nReuters said Peter Okafor would visit Lagos on Monday.\n"
    (tmp_path / "in.txt").write_text(lines * 3)
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.jsonl"
        result = cli("predict", smoke_run / "best", "--input", tmp_path / "in.txt", "--output", out, "--engine", engine)
        assert result.exit_code == 0, result.output
        outputs[engine] = [json.loads(line) for line in out.read_text().splitlines()]
    assert outputs["ray"] == outputs["local"]  # Ray Data batch inference: same entities, same order
    assert [r["text"] for r in outputs["local"]] == lines.splitlines() * 3
    assert any(r["entities"] for r in outputs["local"])
    for record in outputs["local"]:
        for e in record["entities"]:
            assert record["text"][e["start"] : e["end"]] == e["text"]
    single = cli("predict", smoke_run / "best", "--text", "Maria Rossi visited Kyoto.")
    assert (
        single.exit_code == 0
        and json.loads(single.output.strip().splitlines()[-1])["text"] == "Maria Rossi visited Kyoto."
    )
    from tests.test_malformed import tiny_model

    tiny_model(rows=100)(tmp_path / "other")  # another model's tokenizer: refused by each Ray actor as it loads it
    refused = cli("predict", tmp_path / "other", "--input", tmp_path / "in.txt", "--engine", "ray")
    assert refused.exit_code == 2, refused.output
    assert "other: its tokenizer has 30,522 tokens but the model embeds 100" in refused.output


@pytest.mark.parametrize("strategy", ["lora", "top"])
def test_lora_and_top_runs_save_and_reload(ray_session, tmp_path, strategy):
    from transformers import AutoModelForTokenClassification

    cfg = load_config(SMOKE, [f"model.strategy={strategy}", "model.top_layers=1", "train.epochs=2",
                              "model.lora.r=4", "train.lr=1.0e-2"])  # fmt: skip
    results = run_finetune(cfg, tmp_path / strategy)
    saved = AutoModelForTokenClassification.from_pretrained(tmp_path / strategy / "best")
    assert not any("lora" in name for name, _ in saved.named_parameters())  # adapters merged
    fresh = build_model(cfg.model.model_copy(update={"strategy": "full"}), results["data"]["labels"], seed=cfg.seed,
                        vocab_size=len(load_tokenizer(cfg.model.backbone)))  # fmt: skip
    frozen = "bert.encoder.layer.0.attention.self.key.weight"  # frozen under both strategies
    assert torch.equal(saved.state_dict()[frozen], fresh.state_dict()[frozen])
    trained = "classifier.weight"
    assert not torch.equal(saved.state_dict()[trained], fresh.state_dict()[trained])
    if strategy == "lora":  # the merged adapters changed the query projection
        changed = "bert.encoder.layer.0.attention.self.query.weight"
    else:
        changed = "bert.encoder.layer.1.output.dense.weight"
    assert not torch.equal(saved.state_dict()[changed], fresh.state_dict()[changed])


def test_failure_config_restarts_workers_from_the_latest_checkpoint(straight_run, tmp_path):
    cfg = load_config(SMOKE, ["train.epochs=2", "scaling.max_failures=1"])
    results = run_finetune(cfg, tmp_path / "ft", loop_callbacks=[FailOnce(after=1)])
    assert (tmp_path / "ft" / ".injected_failure").exists()
    assert results["train"]["resumed_at_steps"] == [STEPS_PER_EPOCH]
    assert [h["epoch"] for h in results["history"]] == [1.0, 2.0]
    same_training(results, straight_run)  # the restarted workers' random state was restored too


def test_a_weight_average_is_scored_and_exported_without_changing_training(straight_run, tmp_path):
    cfg = load_config(SMOKE, ["train.epochs=2", "scaling.max_failures=1", "train.ema_decay=0.9"])
    results = run_finetune(cfg, tmp_path / "ft", loop_callbacks=[FailOnce(after=1)])
    assert results["train"]["resumed_at_steps"] == [STEPS_PER_EPOCH]  # the average restored with the weights
    for averaged, plain in zip(results["history"], straight_run["history"], strict=True):
        assert averaged["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-6)
    run_finetune(cfg.model_copy(update={"scaling": cfg.scaling.model_copy(update={"max_failures": 0})}),
                 tmp_path / "straight")  # fmt: skip
    [state, straight] = [load_state(next((tmp_path / run / "train").glob("checkpoint_*/state.pt")))
                         for run in ("ft", "straight")]  # fmt: skip
    for name, value in straight["ema"].items():  # the restart carried on the same average
        assert torch.allclose(state["ema"][name], value, rtol=1e-5, atol=1e-7), name
    from transformers import AutoModelForTokenClassification

    saved = AutoModelForTokenClassification.from_pretrained(tmp_path / "ft" / "best").state_dict()
    assert torch.equal(saved["classifier.weight"], state["ema"]["classifier.weight"])
    assert not torch.equal(state["ema"]["classifier.weight"], state["model"]["classifier.weight"])


def test_interrupted_run_resumes_in_the_same_directory(straight_run, tmp_path):
    cfg = load_config(SMOKE, ["train.epochs=2"])
    with pytest.raises(Exception, match="injected failure"):
        run_finetune(cfg, tmp_path / "run", loop_callbacks=[FailOnce(after=1)])
    assert not (tmp_path / "run" / "results.json").exists()
    # A copy whose checkpoint was replaced by a malicious pickle is refused on the workers, its payload unrun.
    shutil.copytree(tmp_path / "run", tmp_path / "tampered")
    [state] = (tmp_path / "tampered" / "train").glob("checkpoint_*/state.pt")
    malicious(state, tmp_path / "pwned")
    with pytest.raises(UserError, match="state.pt: not a drml-ray checkpoint"):
        run_finetune(cfg, tmp_path / "tampered")
    assert not (tmp_path / "pwned").exists()
    results = run_finetune(cfg, tmp_path / "run")  # same directory, no --overwrite: resumes
    assert results["train"]["resumed_at_steps"] == [STEPS_PER_EPOCH]
    assert [h["step"] for h in results["history"]] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    same_training(results, straight_run)  # as a run never interrupted: each worker's dropout state is restored


def test_a_disk_that_fills_while_a_checkpoint_is_stored_stops_the_run_and_keeps_the_last_one(ray_session, tmp_path):
    """The run directory on a 20 MB tmpfs: epoch 1's checkpoint (~12 MB: weights and Adam's moments) fits,
    epoch 2's does not, and Ray's own record of its checkpoints is cut to 0 bytes. The run stops with one
    message; the rerun's first step finds epoch 1's checkpoint whole to continue from (the continuing itself:
    ``test_interrupted_run_resumes_in_the_same_directory``; the mending: ``test_checkpoint_pruning.py``)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(disk)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"a size-limited tmpfs cannot be mounted here: {mount.stderr.decode().strip()}")
    try:
        cfg = load_config(SMOKE, ["train.epochs=2", "train.patience=0"])
        # (the worker's write of the checkpoint fails, or Ray's record of it)
        with pytest.raises(UserError, match=r"checkpoint could not be (written|stored) \(.*No space left on device"):
            run_finetune(cfg, disk / "run")
        subprocess.run(["mount", "-o", "remount,size=200m", str(disk)], check=True)  # space freed
        start = recover_record(disk / "run" / "train") or latest_recorded(disk / "run" / "train")
        assert [h["epoch"] for h in load_state(start / STATE_FILE)["loop"]["history"]] == [1.0]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def latest_recorded(train: Path) -> Path:
    """The newest checkpoint Ray's (readable) record lists."""
    return train / max(listed_checkpoints(train / RAY_SNAPSHOT) or [])


def test_local_mode_trains_exactly_as_one_ray_train_worker(ray_session, tmp_path):
    threads = torch.get_num_threads()
    try:
        one, here = (run_finetune(load_config(SMOKE, ["train.epochs=2", f"scaling.num_workers={n}"]), tmp_path / str(n))
                     for n in (1, 0))  # fmt: skip
    finally:
        torch.set_num_threads(threads)  # (local mode set this process's: cpus_per_worker)
    assert [(h["train_loss"], h["dev_f1"]) for h in here["history"]] == [(h["train_loss"], h["dev_f1"])
                                                                         for h in one["history"]]  # fmt: skip
    assert here["test"] == one["test"]
    assert not (tmp_path / "0" / "train" / RAY_SNAPSHOT).exists()  # no controller: the loop's own record
