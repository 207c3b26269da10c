"""A continual run at toy scale: the plain-torch side in one process (growth, data, loss terms, EWC state,
scoring), and `drml continual` on Ray Train (class protocol), its files, a rerun and its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from drml_ray.cli import app
from drml_ray.config import load_config
from drml_ray.continual.learner import (
    dev_split,
    ewc_loss,
    load_model,
    lwf_loss,
    read_ewc_state,
    save_ewc_state,
    score,
    training_data,
)
from drml_ray.continual.protocols import experiences
from drml_ray.continual.strategies import distillation_sum, ewc_penalty, grown_labels
from drml_ray.data.parquet import read_parquet
from drml_ray.errors import UserError
from drml_ray.ner.modeling import load_tokenizer, save_hf_folder
from drml_ray.ner.optimization import token_loss_sum

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "continual" / "smoke.yaml"
TUNE_SMOKE = SMOKE.parents[1] / "tune" / "continual_smoke.yaml"
TINY = ["data.generated.train=48", "data.generated.dev=8", "data.generated.test=16", "train.epochs=1"]
CLASS = ["continual.protocol=class", "continual.corpus=generated:PER,ORG,LOC,MISC", "continual.first_types=2",
         "continual.types_per_step=2"]  # fmt: skip


def test_plain_side_of_a_domain_sequence(tmp_path):
    cfg = load_config(SMOKE, TINY)
    found = experiences(cfg)
    assert [e.types for e in found] == [["organisation", "person"], ["location"], ["misc", "person"]]
    first = grown_labels([], found[0].types)
    labels = grown_labels(first, found[1].types)
    assert len(training_data("joint", found[:2], [], labels)) == len(found[0].train) + len(found[1].train)
    assert training_data("replay", found[:2], found[0].train[:3], labels)[-3:] == found[0].train[:3]
    assert len(dev_split(found[:2])) == len(found[0].dev) + len(found[1].dev)  # each domain its own dev
    # Experience 1's model, saved; growing it to experience 2's labels keeps its rows bit for bit.
    model, _ = load_model(cfg, cfg.model.backbone, first)
    save_hf_folder(model, load_tokenizer(cfg.model.backbone), tmp_path / "exp1")
    grown, _ = load_model(cfg, str(tmp_path / "exp1"), labels)
    assert torch.equal(grown.classifier.weight[: len(first)], model.classifier.weight)
    row = score(cfg, str(tmp_path / "exp1"), first, found, 1)
    assert len(row["R"]) == 3 and row["R"][1] == 0.0 and row["seen"] is None  # no row for location yet
    # EWC: the state round-trips through safetensors; the penalty is 0 at the anchor and grows away from it.
    save_ewc_state(cfg, str(tmp_path / "exp1"), first, found[0], None, str(tmp_path / "ewc.safetensors"))
    fisher, anchor = read_ewc_state(tmp_path / "ewc.safetensors")
    assert set(fisher) == set(anchor) and fisher["classifier.weight"].shape == (len(first), 32)
    term = ewc_loss(grown, torch.device("cpu"), str(tmp_path / "ewc.safetensors"), weight=2.0)
    batch = {"labels": torch.tensor([[1, -100, 0]])}  # two labelled positions
    assert term(batch, None, 0.5).item() == 0.0
    with torch.no_grad():
        grown.classifier.weight.add_(0.1)
    expected = ewc_penalty(dict(grown.named_parameters()), fisher, anchor).item()  # 2/2 * penalty * 2 * 0.5
    assert expected > 0 and term(batch, None, 0.5).item() == pytest.approx(expected)
    # LwF (ExtendNER): a word of a new type keeps its cross-entropy; an O word learns from the teacher instead.
    inputs = {"input_ids": torch.tensor([[101, 2000, 102]]), "attention_mask": torch.ones(1, 3, dtype=torch.long)}
    lwf = lwf_loss(grown, torch.device("cpu"), str(tmp_path / "exp1"), first, 2.0, 0.5, cfg.model_dump(mode="json"))
    logits = grown(**inputs).logits
    teacher = model.eval()(**inputs).logits
    labels = torch.tensor([[-100, labels_new := len(first), 0]])  # word 1: a new type (B-location), word 2: O
    loop_loss = token_loss_sum(logits, labels) * 0.25  # what the training loop computes before the term
    total = loop_loss + lwf(inputs | {"labels": labels}, logits, 0.25)
    new_type_only = torch.tensor([[-100, labels_new, -100]])
    want = (token_loss_sum(logits, new_type_only) + 0.5 * distillation_sum(logits, teacher, labels == 0, 2.0)) * 0.25
    assert total.item() == pytest.approx(want.item(), rel=1e-5)


def test_word_shapes_reach_the_fisher_the_teacher_and_the_scores(tmp_path, monkeypatch):
    import drml_ray.continual.learner as learner

    cfg = load_config(SMOKE, [*TINY, "model.casing=shape"])
    found = experiences(cfg)
    first = grown_labels([], found[0].types)
    model, tokenizer = load_model(cfg, cfg.model.backbone, first)
    assert model.bert.embeddings.token_type_embeddings.num_embeddings == 4
    model.config.drml = {"casing": "shape"}  # (as an experience's export records it)
    with torch.no_grad():
        model.bert.embeddings.token_type_embeddings.weight[1, :8] += 1.0  # Capitalised words now read differently
    save_hf_folder(model, tokenizer, tmp_path / "exp1")
    # LwF's teacher is that model, its rows kept, and it is handed the batch's token types.
    lwf = lwf_loss(model, torch.device("cpu"), str(tmp_path / "exp1"), first, 2.0, 1.0, cfg.model_dump(mode="json"))
    inputs = {"input_ids": torch.tensor([[101, 2000, 102]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
              "labels": torch.tensor([[-100, 0, -100]])}  # fmt: skip
    logits = torch.zeros(1, 3, len(first))
    types = [lwf(inputs | {"token_type_ids": torch.tensor([[0, t, 0]])}, logits, 1.0).item() for t in (0, 1, 0)]
    assert types[0] == types[2] != types[1]
    # The Fisher's token-type rows: only row 0 would have a gradient if the shapes were not passed.
    save_ewc_state(cfg, str(tmp_path / "exp1"), first, found[0], None, str(tmp_path / "ewc.safetensors"))
    rows = read_ewc_state(tmp_path / "ewc.safetensors")[0]["bert.embeddings.token_type_embeddings.weight"]
    assert rows[0].abs().sum() > 0 and rows[1].abs().sum() > 0  # lower-case words and Capitalised ones
    # The scores are read with shapes.
    seen = []
    original = learner.predict_words
    monkeypatch.setattr(learner, "predict_words", lambda *a, **kw: seen.append(kw["casing"]) or original(*a, **kw))
    score(cfg, str(tmp_path / "exp1"), first, found, 1)
    assert seen and all(seen)


def test_a_combined_strategy_trains_on_the_buffer_with_the_other_strategys_loss(tmp_path):
    from drml_ray.continual.driver import loss_term

    cfg = load_config(SMOKE, [*TINY, "continual.strategies=[lwf+replay,ewc+replay]"])
    found = experiences(cfg)
    buffer = found[0].train[:3]
    assert training_data("lwf+replay", found[:2], buffer, []) == [*found[1].train, *buffer]
    assert training_data("lwf", found[:2], buffer, []) == found[1].train
    previous = tmp_path / "exp1"
    lwf_ref, lwf_kwargs = loss_term(cfg, "lwf+replay", previous, ["O"])
    assert lwf_ref.endswith(":lwf_loss") and lwf_kwargs["teacher"] == str(previous / "best")
    ewc_ref, ewc_kwargs = loss_term(cfg, "ewc+replay", previous, ["O"])
    assert ewc_ref.endswith(":ewc_loss") and ewc_kwargs["path"] == str(previous / "ewc.safetensors")
    assert loss_term(cfg, "replay", previous, ["O"]) is None and loss_term(cfg, "lwf+replay", None, []) is None
    with pytest.raises(UserError, match="continual.strategies"):
        load_config(SMOKE, ["continual.strategies=[lwf+ewc]"])


def test_a_search_takes_one_strategy_per_trial_and_counts_experiences():
    from drml_ray.continual.driver import prepare_search
    from drml_ray.runtime.registry import kind_of

    cfg = load_config(TUNE_SMOKE)
    assert kind_of(cfg).tune.plan(cfg).budget == 3
    on_workers = ["scaling.num_workers=1"]  # (the smoke config trains in local mode, which trials refuse)
    assert kind_of(cfg).tune.plan(load_config(SMOKE, [*TINY, *CLASS, *on_workers])).budget == 2  # LOC+MISC, ORG+PER
    with pytest.raises(UserError, match="local mode"):
        kind_of(cfg).tune.plan(load_config(SMOKE))
    with pytest.raises(UserError, match="one strategy per trial"):
        prepare_search(load_config(TUNE_SMOKE, ["continual.strategies=[ewc,lwf]"]))


def test_a_meta_learned_start_runs_its_strategies_again_under_their_own_names(tmp_path):
    from drml_ray.continual.driver import planned_runs

    cfg = load_config(SMOKE, [f"continual.meta_init={tmp_path}/reptile", "continual.meta_init_strategies=[naive,lwf]"])
    runs = planned_runs(cfg)
    assert list(runs) == ["naive", "replay", "ewc", "lwf", "naive@meta", "lwf@meta"]
    assert runs["lwf@meta"] == ("lwf", str(tmp_path / "reptile")) and runs["lwf"] == ("lwf", "tiny-random-bert")


def test_strategies_from_one_start_share_their_first_experience(tmp_path):
    from drml_ray.continual.driver import copy_first, planned_runs, same_first_experience

    sets = [*TINY, *CLASS, "continual.strategies=[naive,replay,joint,lwf+replay]",
            f"continual.meta_init={tmp_path}/reptile", "continual.meta_init_strategies=[naive,lwf]"]  # fmt: skip
    cfg = load_config(SMOKE, sets)
    groups = same_first_experience(planned_runs(cfg), experiences(cfg))
    assert groups == [["naive", "replay", "joint", "lwf+replay"], ["naive@meta", "lwf@meta"]]
    source, target = tmp_path / "naive", tmp_path / "joint"
    (source / "exp1" / "best").mkdir(parents=True)
    (source / "exp1" / "train").mkdir()
    (source / "exp1" / "best" / "model.safetensors").write_bytes(b"weights")
    (source / "baseline.json").write_text("[0.1, 0.0]")
    row = {"R": [0.5, 0.2], "dev_f1": 0.6, "seen": None, "seconds": 9.0}
    (source / "exp1" / "row.json").write_text(json.dumps(row))
    copy_first(source, target)
    assert (target / "exp1" / "best" / "model.safetensors").read_bytes() == b"weights"
    assert json.loads((target / "exp1" / "row.json").read_text()) == row | {"copied_from": "naive"}
    assert (target / "baseline.json").read_text() == "[0.1, 0.0]" and not (target / "exp1" / "train").exists()
    (source / "exp1" / "row.json").write_text('{"R": [0.9, 0.9]}')  # a finished copy is not made again
    copy_first(source, target)
    assert json.loads((target / "exp1" / "row.json").read_text())["R"] == [0.5, 0.2]


def test_class_protocol_refuses_a_wrong_type_order():
    with pytest.raises(UserError, match="type_order must list every type"):
        experiences(load_config(SMOKE, [*TINY, *CLASS, "continual.type_order=[PER,ORG,LOC]"]))
    with pytest.raises(UserError, match="leaves no type"):
        experiences(load_config(SMOKE, [*TINY, *CLASS, "continual.first_types=4"]))


@pytest.mark.ray
def test_drml_continual_class_protocol_on_ray_train(ray_session, tmp_path):
    run_dir = tmp_path / "continual"
    # EWC and a combined name end to end; ewc+replay copies naive's first experience and adds its Fisher.
    sets = [*TINY, *CLASS, "continual.strategies=[naive,ewc+replay]", "scaling.num_workers=1"]  # (on workers)
    args = ["continual", str(SMOKE), "--output-dir", str(run_dir), *(x for item in sets for x in ("--set", item))]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = json.loads((run_dir / "continual.json").read_text())
    assert table["experiences"] == ["step 1: LOC+MISC", "step 2: ORG+PER"]
    hashed = [f"experience {name}'s {split}" for name in table["experiences"] for split in ("train", "dev", "test")]
    assert list(json.loads((run_dir / "inputs.json").read_text())) == hashed  # (a rerun checks its data is the same)
    s = table["strategies"]["ewc+replay"]
    assert len(s["R"]) == 2 and s["acc"] == pytest.approx(sum(s["R"][-1]) / 2)
    assert s["bwt"] == pytest.approx(s["R"][1][0] - s["R"][0][0]) and s["forgetting"] == [-s["bwt"]]
    assert 0.0 <= s["micro_f1"] <= 1.0 and len(s["seen"]) == 2
    assert s["labels"] == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    exp1, exp2 = (run_dir / "strategies" / "ewc+replay" / f"exp{i}" for i in (1, 2))
    assert (exp2 / "best" / "config.json").is_file() and (exp2 / "ewc.safetensors").is_file()
    assert json.loads((exp1 / "row.json").read_text())["copied_from"] == "naive"
    naive1 = run_dir / "strategies" / "naive" / "exp1"
    assert (exp1 / "ewc.safetensors").is_file() and not (naive1 / "ewc.safetensors").exists()
    assert (naive1 / "best" / "model.safetensors").is_file() and not (naive1 / "train").exists()  # checkpoints gone
    assert s["R"][0] == table["strategies"]["naive"]["R"][0] and "trained once, as naive" in result.output
    assert (run_dir / "continual.png").stat().st_size > 0 and "| ewc+replay |" in (run_dir / "continual.md").read_text()
    # One more experience, with a type the run never saw: the finished experiences are kept, not trained again.
    new = tmp_path / "dates.conll"
    new.write_text(
        "".join(f"Ada O O\nleft O O\non O O\n{day} B-DATE B-TIME\n. O O\n\n" for day in ["Monday", "Friday"] * 10)
    )
    extended = CliRunner().invoke(
        app, ["continual", "extend", str(run_dir), str(new), "--strategy", "ewc+replay", "--columns", "1,2"]
    )  # (the tags of column 2, not the last column's)
    assert extended.exit_code == 0 and "experiences 1-2 trained before, kept" in extended.output, extended.output
    record = json.loads((run_dir / "continual.json").read_text())["extensions"][0]
    assert record["strategy"] == "ewc+replay" and record["types"] == ["DATE"] and len(record["R"]) == 3
    assert record["data"] == "strategies/ewc+replay/exp3/data"  # (the splits as read: a later extend reads them)
    assert len(read_parquet(run_dir / record["data"] / "train.parquet")) == 18
    assert record["labels"] == [*s["labels"], "B-DATE", "I-DATE"]
    saved = json.loads((run_dir / "best" / "config.json").read_text())
    assert list(saved["id2label"].values()) == record["labels"]
    report = CliRunner().invoke(app, ["report", str(run_dir)])
    assert report.exit_code == 0, report.output
    assert "Continual learning (class-incremental)" in (run_dir / "report.md").read_text()
    assert "| 1 | ewc+replay | dates.conll | DATE |" in (run_dir / "report.md").read_text()
