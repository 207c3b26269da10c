"""Inverse RL on RLlib at toy scale: the learned-reward connector inside PPO's Learner, and ``drml rl expert``
then ``drml rl irl`` end to end (RLlib's recording read back by RLlib's reader, BC, GAIL, AIRL, the report)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import msgpack
import msgpack_numpy
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from drml_ray._ray_compat import local_learner
from drml_ray.cli import app
from drml_ray.config_files import load_config
from drml_ray.irl.config import IRLExperiment
from drml_ray.irl.demos import Episode, read_episodes, write_episodes
from drml_ray.irl.worker import IRLWorker

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "rl" / "smoke_irl.yaml"
TINY = {"hidden": [8], "train_batch": 400, "minibatch": 200, "epochs": 1, "envs": 2}


def cartpole_demos(path: Path) -> None:
    rng = np.random.default_rng(0)
    write_episodes(path, [Episode(rng.normal(size=(11, 4)).astype(np.float32), rng.integers(0, 2, 10), np.ones(10),
                                  True) for _ in range(2)])  # fmt: skip


def test_with_a_fixed_airl_reward_every_train_batch_reward_is_f_plus_the_absorbing_tail(ray_session, tmp_path):
    from drml_ray.irl.learner import IRLPPOLearner, irl_settings
    from drml_ray.irl.worker import family_config

    cartpole_demos(tmp_path / "demos.parquet")
    cfg = IRLExperiment.model_validate({"name": "t", "env": {"family": "cartpole"}, "ppo": TINY,
                                        "irl": {"families": {"cartpole": {"horizon": 60}}}})  # fmt: skip
    gamma, horizon = 0.9, 60
    disc = {"hidden": [8], "lr": 1e-3, "updates": 2, "batch": 16}
    settings = irl_settings("airl", str(tmp_path / "demos.parquet"), 2, horizon, gamma, disc, 0)
    config = family_config(cfg, "cartpole", 0).training(gamma=gamma)
    algo = config.learners(learner_class=IRLPPOLearner, learner_config_dict={"irl": settings}).build_algo()
    try:
        learner = local_learner(algo)
        fixed = learner.get_reward_state()
        learner.set_reward_state(fixed, train=False)
        algo.train()
        net, last = learner.reward_net, learner.last_batch
        t, remaining = last["transitions"], last["remaining"]
        flag = lambda obs, a: torch.cat([obs * (1 - a.float()[:, None]), a.float()[:, None]], 1)  # noqa: E731
        with torch.no_grad():
            s, s2 = flag(t.obs, torch.zeros(len(t.obs))), flag(t.next_obs, t.next_absorbing)
            f = net.g(s)[:, 0] + gamma * net.h(s2)[:, 0] - net.h(s)[:, 0]
            absorbing = torch.tensor([[0.0, 0, 0, 0, 1]])
            r_abs = float(net.g(absorbing) + gamma * net.h(absorbing) - net.h(absorbing))
        tail = torch.tensor([r_abs * sum(gamma**k for k in range(1, int(n) + 1)) for n in remaining])
        assert len(t.obs) >= 400 and int(t.next_absorbing.sum()) > 0 and int(remaining.max()) > 0
        torch.testing.assert_close(last["rewards"], f + tail, rtol=1e-5, atol=1e-5)
        assert all(torch.equal(v, fixed[k]) for k, v in learner.get_reward_state().items())  # never trained
    finally:
        algo.stop()


def test_lr_final_decays_ppos_rate_linearly_over_the_learners_iterations(ray_session, tmp_path):
    from drml_ray.irl.worker import DEMOS_FILE, irl_config

    cartpole_demos(tmp_path / DEMOS_FILE)
    family = {"horizon": 60, "iters": 4, "lr_final": 1e-4}
    cfg = IRLExperiment.model_validate({"name": "t", "env": {"family": "cartpole"}, "ppo": TINY | {"lr": 1e-3},
                                        "irl": {"families": {"cartpole": family}}})  # fmt: skip
    algo = irl_config(cfg, "cartpole", "gail", 2, 0, str(tmp_path)).build_algo()
    try:
        rates = []
        for _ in range(2):  # 400 and 800 of the 4 x 400 steps sampled: 1e-3 - 0.9e-3 * 1/4, and * 2/4
            algo.train()
            rates += [g["lr"] for g in local_learner(algo).get_optimizer().param_groups]
        assert rates == pytest.approx([7.75e-4, 5.5e-4])
    finally:
        algo.stop()


def rllib_recording(folder: Path) -> list[np.ndarray]:
    """Observations of each episode RLlib recorded, read back with Ray Data and RLlib's episode decoding."""
    import ray.data
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    out = []
    for run in sorted(folder.glob("*/run-*")):
        (row,) = ray.data.read_parquet(str(run)).take_all()
        state = msgpack.unpackb(row["item"], object_hook=msgpack_numpy.decode)
        out.append(np.asarray(SingleAgentEpisode.from_state(state).get_observations()))
    return out


def test_expert_then_irl_on_the_smoke_config(ray_session, tmp_path):
    shrink = ["--set", "irl.families.nav2d.horizon=10", "--set", "irl.families.nav2d.expert_iters=2",
              "--set", "irl.families.nav2d.iters=2", "--set", "irl.bc_iters=3", "--set", "expert.episodes=2",
              "--set", "irl.demos=[2]", "--set", "irl.eval_episodes=2", "--set", "irl.disc.coverage=16",
              "--set", "irl.disc.history=64", "--set", 'ppo={"hidden": [8], '
              '"train_batch": 100, "minibatch": 50, "epochs": 1, "envs": 2}']  # fmt: skip
    run = tmp_path / "irl"
    result = CliRunner().invoke(app, ["rl", "expert", str(SMOKE), "--output-dir", str(run), *shrink])
    assert result.exit_code == 0, result.output
    folder = run / "experts" / "nav2d"
    demos = read_episodes(folder / "transitions.parquet")
    recorded = rllib_recording(folder / "rllib")
    assert len(demos) == len(recorded) == 2
    for ours, rllib in zip(demos, recorded, strict=True):
        np.testing.assert_allclose(ours.obs, rllib)
    expert = json.loads((folder / "expert.json").read_text())
    assert expert["demo_returns"] == pytest.approx([ep.ret for ep in demos])

    # RLlib's BC gives the same policy at a seed (its pre-learner's buffer drew fresh OS entropy, from a set)
    cfg = load_config(SMOKE, [*shrink[1::2], "irl.bc_iters=20"], model=IRLExperiment).model_dump(mode="json")
    first, second = (IRLWorker().bc(cfg, "nav2d", 2, 1, str(folder)) for _ in range(2))
    assert (first["loss"], first["return"]) == (second["loss"], second["return"])

    result = CliRunner().invoke(app, ["rl", "irl", str(SMOKE), "--output-dir", str(run), *shrink])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "irl.json").read_text())
    for method in ("bc", "gail", "airl"):
        cell = summary[method]["nav2d"]["2"]
        assert cell["seeds"] == 1 and np.isfinite(cell["return_ratio"]["mean"])
    assert (run / "irl.png").stat().st_size > 0 and len(list((run / "rewards" / "airl").rglob("*.pt"))) == 1
    transfer = summary["transfer"]["nav2d"]  # every move halved: the smoke config's transfer_task
    assert sorted(transfer["methods"]) == ["airl policy carried over", "airl reward, new PPO policy",
                                           "bc policy carried over", "gail policy carried over"]  # fmt: skip
    assert transfer["ppo_true_reward_return"] == expert["transfer"]["return"]
    assert "Reward transfer" in (run / "irl.md").read_text()
    again = CliRunner().invoke(app, ["rl", "irl", str(SMOKE), "--output-dir", str(run), *shrink])
    assert "0 cells to run (3 kept)" in again.output

    other = CliRunner().invoke(app, ["rl", "irl", str(SMOKE), "--output-dir", str(run), *shrink[2:]])
    assert other.exit_code == 2 and "trained with other horizon" in other.output

    # drml tune: two trials (the discriminator's learning rate) imitate the experts trained above
    search = {"space": {"irl.disc.lr": {"grid": [0.001, 0.003]}}, "search": "grid", "metric": "return_ratio",
              "max_concurrent_trials": 1, "scheduler": {"type": "fifo"}}  # fmt: skip
    tuned = CliRunner().invoke(app, ["tune", str(SMOKE), "--output-dir", str(tmp_path / "search"), *shrink,
                                     "--set", "irl.methods=[gail]", "--set", f"irl.experts_dir={run}",
                                     "--set", f"tune={json.dumps(search)}"])  # fmt: skip
    assert tuned.exit_code == 0, tuned.output
    assert f"`drml rl irl {tmp_path / 'search' / 'best_config.yaml'}` trains it again" in tuned.output
    with (tmp_path / "search" / "trials.csv").open() as handle:  # a trial's cells are its work, not overhead
        assert all(float(t["overhead_s"]) < float(t["wall_s"]) / 2 for t in csv.DictReader(handle))
    best = json.loads((tmp_path / "search" / "results.json").read_text())
    assert (Path(best["best_model"]) / "irl.json").exists()

    # a longer reward transfer: refused until `drml rl expert` trains the yardstick again (and only it)
    longer = [*shrink, "--set", "irl.families.nav2d.transfer_iters=3"]
    refused = CliRunner().invoke(app, ["rl", "irl", str(SMOKE), "--output-dir", str(run), *longer])
    assert refused.exit_code == 2 and "trained 2 iterations" in refused.output, refused.output
    weights = (folder / "weights.pt").read_bytes()
    assert CliRunner().invoke(app, ["rl", "expert", str(SMOKE), "--output-dir", str(run), *longer]).exit_code == 0
    again = json.loads((folder / "expert.json").read_text())
    assert len(again["transfer"]["curve"]) == 3 and (folder / "weights.pt").read_bytes() == weights
    assert again["demo_returns"] == expert["demo_returns"]
    result = CliRunner().invoke(app, ["rl", "irl", str(SMOKE), "--output-dir", str(run), *longer])
    assert "1 cells to run (2 kept" in result.output, result.output  # AIRL's only
    cell = json.loads((run / "irl_cells.json").read_text())["airl/nav2d/2/1"]
    assert len(cell["transfer"]["reward"]["curve"]) == 3


def test_meta_irl_on_the_smoke_config_at_toy_scale(ray_session, tmp_path):
    shrink = ["--set", "meta_irl.train_tasks=2", "--set", "meta_irl.test_tasks=1", "--set", "meta_irl.horizon=10",
              "--set", "meta_irl.expert_iters=1", "--set", "meta_irl.iters=1", "--set", "meta_irl.meta_iters=3",
              "--set", "meta_irl.negatives=2", "--set", "irl.eval_episodes=1", "--set", 'ppo={"hidden": [8], '
              '"train_batch": 100, "minibatch": 50, "epochs": 1, "envs": 2}']  # fmt: skip
    run = tmp_path / "meta_irl"
    smoke = REPO / "configs" / "rl" / "smoke_meta_irl.yaml"
    result = CliRunner().invoke(app, ["rl", "meta-irl", str(smoke), "--output-dir", str(run), *shrink])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "meta_irl.json").read_text())["demos"]["1"]
    table = summary["adaptation"]  # the meta-eval table: before, after 1 and after 10 inner-loop steps
    assert sorted(table) == ["meta", "multitask", "oracle", "scratch"]
    assert all(np.isfinite(table[m]["episode_return_mean_adapt_2"]) for m in table)
    assert sorted(summary["return_ratio"]) == ["airl", "meta", "multitask", "scratch"]
    assert (run / "meta_irl_1demos.png").stat().st_size > 0 and (run / "rewards" / "meta_irl" / "meta.pt").exists()
    assert len(read_episodes(run / "meta_irl_tasks" / "test0" / "transitions.parquet")) == 2  # 1 asked, 2 to train
    again = CliRunner().invoke(app, ["rl", "meta-irl", str(smoke), "--output-dir", str(run), *shrink])
    assert "0 experts to train" in again.output and "0 cells to run (4 kept)" in again.output
    report = CliRunner().invoke(app, ["report", str(run)])
    assert report.exit_code == 0 and "Meta-IRL" in (run / "report.md").read_text()
