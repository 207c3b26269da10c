"""The YAML search space, its validation, and the pure helpers of the Tune driver (no Ray started)."""

from __future__ import annotations

import json

import pytest
from ray import tune

from drml_ray.config import (
    ConfigError,
    Distribution,
    FinetuneConfig,
    TuneSettings,
    load_config,
    with_params,
)
from drml_ray.errors import UserError
from drml_ray.meta.config import MetaExperiment
from drml_ray.meta.kind import KIND as META
from drml_ray.ner.kind import trial_plan
from drml_ray.runtime.registry import TrialPlan
from drml_ray.tune.driver import _tuner, concurrent_trials, drop_unrecorded_trials, trial_name
from drml_ray.tune.space import make_scheduler, param_space, to_domain
from drml_ray.tune.summary import TrialSummary, format_trials, trial_state

BASE = """name: t
model: {backbone: tiny-random-bert}
scaling: {num_workers: 1}
tune:
  space:
    train.lr: {loguniform: [1.0e-5, 1.0e-3]}
"""


def write(tmp_path, text: str):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_each_kind_becomes_its_tune_domain():
    assert isinstance(to_domain(Distribution(loguniform=[1e-5, 1e-3])).get_sampler(), tune.search.sample.LogUniform)
    assert isinstance(to_domain(Distribution(uniform=[0.0, 0.3])), tune.search.sample.Float)
    assert isinstance(to_domain(Distribution(randint=[1, 4])), tune.search.sample.Integer)
    assert to_domain(Distribution(choice=["full", "lora"])).categories == ["full", "lora"]
    assert to_domain(Distribution(grid=[1, 2])) == {"grid_search": [1, 2]}
    # search: grid enumerates choices as well
    space = param_space(TuneSettings(space={"model.strategy": {"choice": ["full", "top"]}}, search="grid"))
    assert space == {"model.strategy": {"grid_search": ["full", "top"]}}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"loguniform": [1e-3, 1e-5]}, "low < high"),
        ({"loguniform": [0.0, 1.0]}, "must be positive"),
        ({"uniform": [0.1]}, "low < high"),
        ({"randint": [1, 2]}, r"randint \[1, 2\] draws only 1: .* write \[1, 3\] for 1 and 2"),  # (Tune leaves out 2)
        ({"choice": []}, "at least one value"),
        ({"choice": [1], "grid": [2]}, "exactly one"),
        ({}, "exactly one"),
    ],
)
def test_bad_distributions_are_rejected(spec, message):
    with pytest.raises(ValueError, match=message):
        Distribution.model_validate(spec)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    train.lrr: {choice: [1]}\n", r"exp.yaml:7: tune.space.train.lrr: unknown key 'lrr' in train"),
        ("    model.strategy: {choice: [full, half]}\n",
         r"exp.yaml:7: tune.space.model.strategy: model.strategy: Input should be"),
        ("  search: grid\n", r"exp.yaml:4: tune: .*grid needs grid or choice for every key"),
        ("  schedular: {type: asha}\n", r"exp.yaml:7: tune.schedular: unknown key"),
    ],
)  # fmt: skip
def test_space_key_errors_name_file_line_and_key(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, BASE + extra))


def test_with_params_applies_dotted_keys_and_validates():
    cfg = FinetuneConfig(name="x")
    tuned = with_params(cfg, {"train.lr": 2e-4, "model.strategy": "lora", "model.lora.r": 4})
    assert (tuned.train.lr, tuned.model.strategy, tuned.model.lora.r) == (2e-4, "lora", 4)
    assert cfg.train.lr == 5e-5  # the original is untouched
    with pytest.raises(ConfigError, match="train.epochs"):
        with_params(cfg, {"train.epochs": "three"})


def test_concurrent_trials_fit_the_cluster():
    plan = trial_plan(FinetuneConfig(name="x", scaling={"num_workers": 2, "cpus_per_worker": 2}))
    assert concurrent_trials(plan, None, {"CPU": 9.0}) == 2  # 4 CPUs per trial
    assert concurrent_trials(plan, 5, {}) == 5  # tune.max_concurrent_trials
    gpu = trial_plan(FinetuneConfig(name="x", scaling={"num_workers": 2, "use_gpu": True}))
    assert concurrent_trials(gpu, None, {"CPU": 16.0, "GPU": 4.0}) == 2
    meta = META.tune.plan(MetaExperiment(name="x", meta={"workers": 2, "gpus_per_worker": 0.5}))
    assert concurrent_trials(meta, None, {"CPU": 16.0, "GPU": 3.0}) == 3  # 1 GPU per trial
    with pytest.raises(UserError, match=r"one trial needs 4 CPUs \(2 Ray Train workers\)"):
        concurrent_trials(plan, None, {"CPU": 2.0})


def test_schedulers_count_epochs():
    space = {"train.lr": {"loguniform": [1e-5, 1e-3]}, "model.strategy": {"choice": ["full", "top"]}}
    asha = make_scheduler(TuneSettings(space=space, scheduler={"type": "asha"}), max_epochs=8)
    assert (asha._time_attr, asha._max_t) == ("epoch", 8)
    pbt = make_scheduler(TuneSettings(space=space, scheduler={"type": "pbt"}), 8)
    assert list(pbt._hyperparam_mutations) == ["train.lr"]  # continuous keys mutate by default


def test_trial_names_and_states():
    class FakeTrial:
        trial_id = "ab12c_00007"

    assert trial_name(FakeTrial()) == "trial_00007"
    assert trial_state("boom", {}, 4, "asha") == "error"
    assert trial_state(None, {"epoch": 4.0}, 4, "asha") == "completed"
    table = format_trials([TrialSummary("trial_00000", {"train.lr": 1e-4}, "completed", 4.0, 0.5, None)], "dev_f1")
    assert table.splitlines()[0].split() == ["trial", "train.lr", "best", "dev_f1", "epochs", "state"]
    assert table.splitlines()[1].split() == ["trial_00000", "0.0001", "0.5000", "4", "completed"]


def test_a_trial_is_ranked_by_its_best_result_or_by_its_last():
    """Fine-tuning keeps its best epoch; a continual trial is its model after the last experience (its first
    result, after experience 1, is the highest and the same in every trial, so ranking by it picks at random)."""
    from types import SimpleNamespace

    import pandas as pd

    from drml_ray.continual.kind import KIND as CONTINUAL
    from drml_ray.ner.kind import KIND as FINETUNE
    from drml_ray.tune.summary import summarise_trials

    rows = [{"epoch": e, "dev_f1": f, "checkpoint_path": f"exp{e}", "timestamp": 10.0 * e, "time_this_iter_s": 10.0}
            for e, f in [(1, 0.77), (2, 0.33), (3, 0.24)]]  # fmt: skip
    grid = [SimpleNamespace(metrics_dataframe=pd.DataFrame(rows), config={"continual.ewc_lambda": 1e5},
                            path="/x/trial_00000", error=None)]  # fmt: skip
    settings = TuneSettings(space={"continual.ewc_lambda": Distribution(grid=[1e5])}, search="grid")
    best, last = (summarise_trials(grid, settings, 3, scope)[0] for scope in ("best", "last"))
    assert (best.best_metric, best.best_checkpoint) == (0.77, "exp1")
    assert (last.best_metric, last.best_checkpoint, last.epochs, last.state) == (0.24, "exp3", 3.0, "completed")
    assert (FINETUNE.tune.scope, CONTINUAL.tune.scope) == ("best", "last")
    assert format_trials([last], "dev_f1", "last").splitlines()[0].split()[2:4] == ["last", "dev_f1"]
    assert (best.row()["best"], last.row()["last"], "best" in last.row()) == (0.77, 0.24, False)  # trials.csv


def test_asha_keeps_its_rungs_across_a_resume(tmp_path):
    """Tune rebuilds a restored search's scheduler from its start-time copy; ours reads its rungs back."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    settings = TuneSettings(space={"train.lr": {"grid": [1e-4]}}, scheduler={"type": "asha", "grace_period": 1})

    def scheduler(state_dir):
        s = make_scheduler(settings, max_epochs=9, state_dir=state_dir)
        s.set_search_properties("dev_f1", "max")
        return s

    def report(s, name, f1):
        trial = SimpleNamespace(trial_id=name)
        s.on_trial_add(None, trial)
        return s.on_trial_result(None, trial, {"epoch": 1.0, "dev_f1": f1})

    before = scheduler(tmp_path)
    assert report(before, "good", 0.9) == TrialScheduler.CONTINUE  # the first score at a rung always continues
    resumed, forgetful = scheduler(tmp_path), scheduler(None)
    # with 0.9 recorded at epoch 1, a trial at 0.1 is below the top third and stops; plain ASHA lets it go on
    assert report(resumed, "weak", 0.1) == TrialScheduler.STOP
    assert report(forgetful, "weak", 0.1) == TrialScheduler.CONTINUE


SHA_STATE = {"num_trials": 3, "rungs": [1.0], "reduction_factor": 3.0, "mode": "max", "scores": [{}],
             "ended": [[]], "promoted": [None]}  # fmt: skip
"""``sha_state.json`` of three trials and one rung that none has reached."""


@pytest.mark.parametrize(
    ("kind", "state", "message"),
    [
        ("asha", [[{"t1": "0.9"}, {}]], "at 0.0.t1: Input should be a valid number"),  # a score edited into text
        ("asha", [[{}]], "rungs per bracket [1], the search has [2]"),  # not this search's rungs (epochs 3 and 1)
        ("sha", SHA_STATE | {"mode": "best"}, "at mode: Input should be 'max' or 'min'"),
        ("sha", SHA_STATE | {"promoted": []}, "one entry per rung (1)"),
    ],
)
def test_a_damaged_scheduler_state_is_named_on_resume(tmp_path, kind, state, message):
    """A resumed search reads its rungs back; a state file edited by hand is the user's to restore or remove."""
    import json
    from types import SimpleNamespace

    from drml_ray.tune.space import ASHA_STATE_FILE, SHA_STATE_FILE

    settings = TuneSettings(space={"train.lr": {"grid": [1e-2, 1e-3, 1e-4]}}, search="grid",
                            scheduler={"type": kind, "grace_period": 1, "reduction_factor": 3})  # fmt: skip
    state_file = tmp_path / (ASHA_STATE_FILE if kind == "asha" else SHA_STATE_FILE)
    state_file.write_text(json.dumps(state))
    scheduler = make_scheduler(settings, max_epochs=3, state_dir=tmp_path, max_concurrent=1)
    with pytest.raises(UserError) as err:
        scheduler.on_trial_add(SimpleNamespace(get_trials=list), SimpleNamespace(trial_id="a"))
    assert str(err.value).startswith(f"{state_file}: damaged, not the JSON drml wrote")
    assert message in str(err.value) and str(err.value).endswith("remove it to restart the halving")


def test_successive_halving_pauses_then_resumes_the_best_and_stops_the_rest(tmp_path):
    """Tune's side of synchronous halving, with a stand-in controller: 3 trials, one rung at epoch 1."""
    from types import SimpleNamespace

    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from drml_ray.tune.space import make_searcher

    settings = TuneSettings(space={"train.lr": {"grid": [1e-2, 1e-3, 1e-4]}}, search="grid",
                            scheduler={"type": "sha", "grace_period": 1, "reduction_factor": 3})  # fmt: skip
    trials = {name: SimpleNamespace(trial_id=name, status=Trial.RUNNING) for name in "abc"}
    stopped = []

    def stop_trial(trial):  # as Tune does: the scheduler hears of it before the status changes
        stopped.append(trial)
        sha.on_trial_remove(controller, trial)
        trial.status = Trial.TERMINATED

    controller = SimpleNamespace(get_trials=lambda: list(trials.values()), stop_trial=stop_trial,
                                 search_alg=SimpleNamespace(is_finished=lambda: True))  # fmt: skip
    sha = make_scheduler(settings, max_epochs=3, state_dir=tmp_path, max_concurrent=1)
    sha.set_search_properties("dev_f1", "max")
    generator = make_searcher(settings, seed=0, max_concurrent=1, state_dir=tmp_path)

    def report(name, epoch, f1):
        decision = sha.on_trial_result(controller, trials[name], {"epoch": epoch, "dev_f1": f1})
        if decision == TrialScheduler.PAUSE:
            trials[name].status = Trial.PAUSED
        return decision

    generator._trial_generator = iter([SimpleNamespace(trial_id=name) for name in "bc"])
    generator._live_trials = {"a"}
    assert generator.next_trial() is None  # 'a' runs: max_concurrent 1 reached
    assert report("a", 1.0, 0.7) == TrialScheduler.PAUSE
    assert sha.choose_trial_to_run(controller) is None  # 'a' waits for the rung: it is not resumed yet
    assert generator.next_trial().trial_id == "b"  # a trial paused at a rung does not count as running
    assert generator.next_trial() is None
    assert report("b", 1.0, 0.2) == TrialScheduler.PAUSE
    assert report("c", 1.0, 0.5) == TrialScheduler.STOP  # the rung decides: 'a' continues, 'b' and 'c' stop
    assert stopped == [trials["b"]]  # the paused loser is stopped by the scheduler
    trials["c"].status = Trial.TERMINATED
    assert sha.choose_trial_to_run(controller) is trials["a"]  # the paused winner resumes
    assert trials["b"].status == Trial.TERMINATED and stopped == [trials["b"]]
    # the rungs survive a --resume (Tune restores the scheduler from its start-time pickle)
    resumed = make_scheduler(settings, max_epochs=3, state_dir=tmp_path, max_concurrent=1)
    resumed.set_search_properties("dev_f1", "max")
    requeued = SimpleNamespace(trial_id="a", status=Trial.PENDING)  # --resume requeues every unfinished trial
    requeued.set_status = lambda status: setattr(requeued, "status", status)
    resumed.on_trial_add(controller, requeued)
    assert requeued.status == Trial.PAUSED  # it had reached the rung: it waits for its turn, not for a new start
    assert resumed.on_trial_result(controller, trials["a"], {"epoch": 2.0, "dev_f1": 0.8}) == TrialScheduler.CONTINUE
    assert resumed.on_trial_result(controller, trials["b"], {"epoch": 2.0, "dev_f1": 0.9}) == TrialScheduler.STOP


def test_successive_halving_needs_every_trial_up_front():
    with pytest.raises(ValueError, match="sha scheduler needs every trial up front"):
        TuneSettings(space={"train.lr": {"loguniform": [1e-5, 1e-3]}}, search="optuna", scheduler={"type": "sha"})


def test_resume_drops_the_folders_of_trials_the_saved_state_does_not_list(tmp_path):
    """A killed driver can leave the folder of a trial Tune started (or even finished) after it last saved its
    state; kept, it would push the trial Tune creates again on --resume to a suffixed name. The folders of the
    trials the state lists stay, reported or not; files beside them stay."""
    for name in ("trial_00000", "trial_00001", "trial_00002", "trial_00003"):
        (tmp_path / name).mkdir()
    (tmp_path / "trial_00002" / "result.json").write_text('{"epoch": 1}\n')  # finished, but not in the state
    (tmp_path / "trial_00002" / "checkpoint_000000").mkdir()
    (tmp_path / "experiment_state-x.json").write_text("{}")

    assert drop_unrecorded_trials(tmp_path, frozenset({"trial_00000", "trial_00001"})) == ["trial_00002", "trial_00003"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment_state-x.json", "trial_00000", "trial_00001"]


def test_resume_with_no_search_to_resume_says_it_starts_one(tmp_path, capsys):
    tuner = _tuner(load_config("tune/smoke"), lambda config: None, tmp_path, TrialPlan(1, 0, 4, "1 worker"), 1, True)
    assert type(tuner).__name__ == "Tuner"  # (a new one: nothing was there to restore)
    assert f"[drml] --resume: no search to resume in {tmp_path}, so it starts" in capsys.readouterr().out


def test_a_search_resumed_on_data_that_changed_is_refused_naming_it(tmp_path):
    from drml_ray.tune.driver import _open_search

    cfg = load_config("tune/smoke")
    _open_search(cfg, tmp_path, False, False, {"the train split": "aaaa", "the dev split": "bbbb"})
    (tmp_path / "tune").mkdir()  # (interrupted: no results.json)
    assert _open_search(cfg, tmp_path, True, False, {"the train split": "aaaa", "the dev split": "bbbb"}) == tmp_path
    with pytest.raises(UserError, match=r"the dev split changed since this run began .*pass --overwrite"):
        _open_search(cfg, tmp_path, True, False, {"the train split": "aaaa", "the dev split": "cccc"})
    assert _open_search(cfg, tmp_path, False, True, {"the dev split": "cccc"}) == tmp_path  # --overwrite: anew
    assert json.loads((tmp_path / "inputs.json").read_text()) == {"the dev split": "cccc"}


def test_a_trial_that_searches_the_data_reads_its_own_and_the_best_is_scored_on_it():
    # (the corpus is read once for a search; a trial whose data section differs read it all the same)
    from drml_ray.continual.protocols import experience_inputs
    from drml_ray.ner.finetune import _corpus_of, prepare_search

    cfg = FinetuneConfig(name="x", data={"corpus": "generated", "generated": {"train": 30, "dev": 10, "test": 10}})
    shared, _, inputs = prepare_search(cfg)
    assert inputs == shared[1].digests() and set(inputs) == {"the train split", "the dev split", "the test split"}
    assert _corpus_of(with_params(cfg, {"train.lr": 1e-3}), shared) is shared[1]
    own = _corpus_of(with_params(cfg, {"data.generated.train": 12}), shared)
    assert len(own.splits["train"]) == 12 and len(shared[1].splits["train"]) == 30
    continual = load_config("continual/smoke")
    assert experience_inputs(with_params(continual, {"continual.ewc_lambda": 10.0})) == experience_inputs(continual)
    assert experience_inputs(with_params(continual, {"continual.protocol": "class"})) != experience_inputs(continual)
