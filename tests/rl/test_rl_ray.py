"""RLlib at toy scale: env runners step the task that was set, the PPO task learner's weight handling,
and each ``drml rl`` command once end to end (meta-train -> meta-eval -> rerun; transfer; bad transfer)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ray.util.state import list_actors
from typer.testing import CliRunner

from drml_ray.cli import app

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "rl" / "smoke_nav2d.yaml"
ADAPT_ITERS = 2  # eval.adapt_iters of the smoke config
TRANSFER = REPO / "configs" / "rl" / "smoke_transfer.yaml"
TINY = {"hidden": [8], "train_batch": 40, "minibatch": 20, "epochs": 1, "envs": 2}


WITH_RL2 = ["--set", "meta.methods=[meta,multitask,rl2]", "--set", "eval.methods=[meta,multitask,rl2,scratch,oracle]"]


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_remote_env_runners_step_the_task_that_was_set(ray_session):
    from ray.rllib.algorithms.ppo import PPOConfig

    from drml_ray.rl.envs import TaskFamilyEnv, set_task_on_runner

    algo = (
        PPOConfig()
        .environment(TaskFamilyEnv, env_config={"family": "nav2d", "horizon": 10})
        .env_runners(num_env_runners=1, num_envs_per_env_runner=2)
        .training(train_batch_size_per_learner=40, minibatch_size=20, num_epochs=1)
        .build_algo()
    )
    try:
        goal = {"goal_x": 0.35, "goal_y": -0.25}
        reported = algo.env_runner_group.foreach_env_runner(
            lambda r: set_task_on_runner(r, goal), local_env_runner=False
        )
        assert reported == [[goal, goal]]  # one remote runner, two sub-envs

        def rollout(runner):
            episodes = runner.sample(num_episodes=2, force_reset=True)
            return [(np.asarray(e.get_observations()), np.asarray(e.get_rewards())) for e in episodes]

        [episodes] = algo.env_runner_group.foreach_env_runner(rollout, local_env_runner=False)
        target = np.array([goal["goal_x"], goal["goal_y"]])
        for observations, rewards in episodes:
            # Nav2D's reward is minus the distance from the new position to the goal: the set goal, not the default.
            assert rewards == pytest.approx(-np.linalg.norm(observations[1:] - target, axis=1), abs=1e-5)
    finally:
        algo.stop()


def test_task_learner_sets_weights_everywhere_and_resets_adam(ray_session):
    from drml_ray.rl.ppo import MODULE, PPOTaskLearner

    learner = PPOTaskLearner({"family": "nav2d", "horizon": 10}, TINY, seed=0)
    try:
        fresh = learner.fresh_weights(3)
        assert all(torch.equal(fresh[k], learner.fresh_weights(3)[k]) for k in fresh)
        assert any(not torch.equal(fresh[k], learner.fresh_weights(4)[k]) for k in fresh)
        curve, adapted = learner.adapt(fresh, {"goal_x": 0.1, "goal_y": 0.2}, iterations=2, episodes=2)
        assert len(curve) == 3 and all(r < 0 for r in curve)
        assert any(not torch.equal(adapted[k], fresh[k]) for k in fresh)  # PPO moved the weights
        learner.set_weights(fresh)  # after training: the env runner takes them too (RLlib's sync would skip them)
        runner_state = learner.algo().env_runner.module.state_dict()
        assert runner_state and all(torch.equal(v.float(), fresh[k].float()) for k, v in runner_state.items())
        adam = []
        learner.algo().learner_group.foreach_learner(lambda lr: adam.extend(lr.get_optimizers_for_module(MODULE)))
        assert adam and all(not opt.state for _, opt in adam)
        learner.train(1)
        assert any(opt.state for _, opt in adam)
        assert set(learner.get_weights()) == set(fresh) and MODULE == "default_policy"
    finally:
        learner.stop()


def test_a_job_does_not_depend_on_what_its_worker_ran_before(ray_session):
    """PPO shuffles minibatches with numpy and the env runner continued the previous job's episodes, so a
    curve depended on which actor ran it after what; each job now starts from its seed alone."""
    from drml_ray.rl.driver import RLWorker

    worker = RLWorker({"family": "nav2d", "horizon": 10}, TINY, seed=0, threads=1)
    try:
        fresh, task = worker.fresh(1), {"goal_x": 0.3, "goal_y": -0.2}
        first = worker.curve(fresh, task, 2, 2, seed=5)
        worker.train_on(fresh, {"goal_x": -0.4, "goal_y": 0.1}, 3, seed=9)  # other work in between
        assert worker.curve(fresh, task, 2, 2, seed=5) == first
        new = RLWorker({"family": "nav2d", "horizon": 10}, TINY, seed=0, threads=1)  # nothing built yet
        try:
            assert new.curve(fresh, task, 2, 2, seed=5) == first  # a new actor's first job, as after a retry
        finally:
            for learner in new.learners.values():
                learner.stop()
        one, two = (worker.reptile(fresh, [task], 1, seed=3)[0] for _ in range(2))
        assert all(torch.equal(one[k], two[k]) for k in one)
    finally:
        for learner in worker.learners.values():
            learner.stop()


def test_rllib_builds_quietly_and_starts_no_usage_monitor(ray_session):
    """Every Algorithm a job built warned that RLlib registered its env id with gymnasium again, and started a
    thread sampling the CPU every 0.7 s for metrics drml never reads (with a warning that gputil is missing)."""
    from ray.tune.utils import UtilMonitor

    from drml_ray.rl.ppo import PPOTaskLearner

    learners = [PPOTaskLearner({"family": "nav2d", "horizon": 10}, TINY, seed=0) for _ in range(2)]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for learner in learners:
                learner.algo()  # the second registers RLlib's env id again
        assert [str(w.message) for w in caught if "Overriding environment" in str(w.message)] == []
        assert [t for t in threading.enumerate() if isinstance(t, UtilMonitor)] == []
    finally:
        for learner in learners:
            learner.stop()


@pytest.fixture(scope="module")
def rl_run(ray_session, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "rl_smoke"
    result = cli("rl", "meta-train", SMOKE, "--output-dir", run_dir, *WITH_RL2)
    assert result.exit_code == 0, result.output
    result = cli("rl", "meta-eval", SMOKE, "--output-dir", run_dir, *WITH_RL2)
    assert result.exit_code == 0, result.output
    return run_dir


def test_meta_train_writes_checkpoints_weights_and_a_record(rl_run):
    record = json.loads((rl_run / "meta_train.json").read_text())
    assert [c["step"] for c in record["meta"]["checks"]] == [0, 2, 4] and len(record["meta"]["step_s"]) == 4
    for c in record["meta"]["checks"]:  # a check adapts eval.adapt_iters iterations; Tune's score is their mean
        each = c["return_after_each"]
        assert len(each) == ADAPT_ITERS and c["return_after"] == each[-1]
        assert c["return_mean_adapted"] == pytest.approx(sum(each) / len(each))
    best = max(record["meta"]["checks"], key=lambda c: c["return_mean_adapted"])  # weights.pt: the best check's theta
    assert record["meta"]["best"] == {"step": best["step"], "return_mean_adapted": best["return_mean_adapted"]}
    assert (rl_run / "meta" / "last_weights.pt").is_file()
    # the baselines get the same PPO iterations: meta_steps x meta_batch x inner_iters
    assert record["multitask"]["iterations"] == record["rl2"]["iterations"] == 4 * 2 * 1
    from drml_ray.rl.driver import load_weights

    meta, multitask, rl2 = (load_weights(rl_run / m) for m in ("meta", "multitask", "rl2"))
    assert set(meta) == set(multitask) and any(not torch.equal(meta[k], multitask[k]) for k in meta)
    assert any("lstm" in k for k in rl2) and not any("lstm" in k for k in meta)  # RL²'s recurrent policy
    assert torch.load(rl_run / "meta" / "checkpoint.pt", weights_only=False)["step"] == 4


def test_meta_eval_writes_rllib_style_metrics_for_every_method(rl_run):
    table = json.loads((rl_run / "adaptation.json").read_text())
    assert set(table) == {"meta", "multitask", "rl2", "scratch", "oracle"}
    for method, row in table.items():
        for name in ("episode_return_mean", "episode_return_mean_adapt_1", "episode_return_mean_adapt_2"):
            assert row[name] < 0  # Nav2D returns are minus distances
        assert row["adaptation_delta"] == pytest.approx(row["episode_return_mean_adapt_2"] - row["episode_return_mean"])
        assert [s["seed"] for s in row["seeds"]] == ([1] if method == "oracle" else [1, 2])
        assert row["episode_return_mean"] == pytest.approx(np.mean([s["episode_return_mean"] for s in row["seeds"]]))
    gap = table["meta"]["gap_closed"]["episode_return_mean_adapt_2"]
    scratch, oracle = table["scratch"]["episode_return_mean_adapt_2"], table["oracle"]["episode_return_mean"]
    assert gap == pytest.approx((table["meta"]["episode_return_mean_adapt_2"] - scratch) / (oracle - scratch))
    assert "gap_closed" in table["rl2"] and "| rl2 |" in (rl_run / "adaptation.md").read_text()
    assert (rl_run / "adaptation.png").stat().st_size > 5000 and "| meta |" in (rl_run / "adaptation.md").read_text()


def test_report_shows_meta_training_and_the_adaptation_table(rl_run):
    result = cli("report", rl_run)
    assert result.exit_code == 0, result.output
    text = (rl_run / "report.md").read_text()
    assert "## Meta-training" in text and "## Adaptation on held-out tasks" in text
    assert "| oracle |" in text and "family: nav2d" in text
    page = (rl_run / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<td>oracle</td>" in page  # a table, not text


def test_meta_eval_rerun_keeps_finished_curves_and_meta_train_refuses_a_finished_run(rl_run):
    before = (rl_run / "adaptation.json").read_text()
    result = cli("rl", "meta-eval", SMOKE, "--output-dir", rl_run, *WITH_RL2)
    assert result.exit_code == 0, result.output
    assert "0 curves to run (18 kept)" in result.output
    assert (rl_run / "adaptation.json").read_text() == before
    result = cli("rl", "meta-train", SMOKE, "--output-dir", rl_run)
    assert result.exit_code == 2 and "holds a finished run" in result.output
    result = cli("rl", "meta-eval", SMOKE, "--output-dir", rl_run, "--set", "ppo.lr=0.1")
    assert result.exit_code == 2 and "a different config" in result.output
    assert "ppo.lr: 0.003 there, 0.1 now" in result.output


def test_transfer_writes_the_four_metrics_over_seeds(ray_session, tmp_path):
    result = cli("rl", "transfer", TRANSFER, "--output-dir", tmp_path / "tr")
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "tr" / "transfer.json").read_text())
    assert {"jumpstart", "time_to_threshold", "asymptotic", "total_reward_ratio", "seeds"} <= set(out)
    assert [s["seed"] for s in out["seeds"]] == [1, 2]
    for seed in out["seeds"]:
        curves = seed["curves"]
        assert len(curves["transfer"]) == len(curves["scratch"]) == 4  # before + 3 iterations
        assert seed["jumpstart"] == pytest.approx(curves["transfer"][0] - curves["scratch"][0])
        assert seed["source_return"] > 0  # CartPole pays 1 per step balanced
    assert out["jumpstart"] == pytest.approx(np.mean([s["jumpstart"] for s in out["seeds"]]))
    assert (tmp_path / "tr" / "transfer.png").is_file()


def test_transfer_between_different_spaces_needs_a_mapping(ray_session, tmp_path):
    result = cli("rl", "transfer", TRANSFER, "--output-dir", tmp_path / "x",
                 "--set", "transfer.target_family=pendulum", "--set", "transfer.target={m: 1.0}")  # fmt: skip
    assert result.exit_code == 2
    assert "cartpole: observations (4,)" in result.output and "pendulum: observations (3,)" in result.output
    assert "add transfer.mapping" in result.output and not (tmp_path / "x").exists()


def test_a_meta_eval_curve_whose_actor_is_killed_runs_again_and_the_table_is_unchanged(rl_run, tmp_path):
    """SIGKILL one RLWorker's process mid-evaluation (from outside, as the OOM killer would): the curve it was
    running runs again on a new actor, and every curve equals the undisturbed run's."""
    copy = tmp_path / "copy"
    shutil.copytree(rl_run, copy, ignore=shutil.ignore_patterns("adaptation*"))
    cells_path, killed = copy / "adaptation_cells.json", []

    def kill_one_worker_after_the_first_curve() -> None:
        deadline = time.monotonic() + 180
        while not cells_path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = list_actors(filters=[("class_name", "=", "RLWorker"), ("state", "=", "ALIVE")])
        if alive:
            os.kill(alive[0].pid, signal.SIGKILL)
            killed.append(alive[0].pid)

    killer = threading.Thread(target=kill_one_worker_after_the_first_curve, daemon=True)
    killer.start()
    methods = ["--set", "eval.methods=[meta,scratch]"]
    result = cli("rl", "meta-eval", SMOKE, "--output-dir", copy, *WITH_RL2[:2], *methods)
    killer.join()
    assert result.exit_code == 0, result.output
    assert killed and "its actor died; running it again on a new one" in result.output
    undisturbed = yaml.safe_load((rl_run / "adaptation_cells.json").read_text())["cells"]
    redone = yaml.safe_load(cells_path.read_text())["cells"]
    assert len(redone) == 8 and redone == {key: undisturbed[key] for key in redone}, result.output
