"""Demonstrations as files and as the discriminator's transitions (absorbing rows weighted by hand)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from drml_ray.errors import UserError
from drml_ray.irl.demos import (
    Episode,
    check_fits,
    coverage_states,
    episode_transitions,
    keep_history,
    read_episodes,
    sample,
    transitions,
    write_episodes,
)


def episodes() -> list[Episode]:
    short = Episode(np.array([[0.0], [1.0], [2.0]], np.float32), np.array([0, 1]), np.array([1.0, 1.0]), True)
    cut = Episode(np.array([[5.0], [6.0], [7.0], [8.0]], np.float32), np.array([1, 1, 0]), np.ones(3), False)
    return [short, cut]


def test_demonstrations_round_trip_through_parquet_and_pandas_reads_them(tmp_path):
    path = tmp_path / "demos.parquet"
    write_episodes(path, episodes())
    back = read_episodes(path)
    assert [len(ep.actions) for ep in back] == [2, 3] and [ep.terminated for ep in back] == [True, False]
    np.testing.assert_array_equal(back[1].obs, episodes()[1].obs)
    frame = pd.read_parquet(path)
    assert frame["terminated"].tolist() == [False, True, False, False, False]
    assert frame["truncated"].tolist() == [False, False, False, False, True]
    assert frame["new_obs"].iloc[1].tolist() == [2.0]
    assert [ep.ret for ep in read_episodes(path, 1)] == [2.0]


def test_too_few_demonstrations_or_a_foreign_file_is_the_users_error(tmp_path):
    path = tmp_path / "demos.parquet"
    write_episodes(path, episodes())
    with pytest.raises(UserError, match="2 demonstrations, 3 asked for"):
        read_episodes(path, 3)
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(UserError, match="x.parquet: not a demonstrations file"):
        read_episodes(tmp_path / "x.parquet")


def edited(tmp_path, column: str, row: int, value) -> Path:
    """The demonstrations of ``episodes()`` with ``column`` of ``row`` (0-based) set to ``value``."""
    path = tmp_path / "demos.parquet"
    write_episodes(path, episodes())
    table = pq.read_table(path).to_pydict()
    table[column][row] = value
    pq.write_table(pa.table(table), path)
    return path


@pytest.mark.parametrize(
    ("column", "row", "value", "message"),
    [
        ("t", 1, 0, "episode 0 has step 0 twice"),
        ("t", 3, 2, "episode 1 has no step 1"),
        ("terminated", 2, True, "row 3: episode 1 ends at step 0 but goes on to step 2"),
        ("obs", 4, [1.0, 2.0], "row 5: obs has 2 numbers, row 1 1"),
        ("new_obs", 0, [float("nan")], "row 1: new_obs is not a finite number"),
        ("rewards", 3, float("inf"), "row 4: rewards is not a finite number"),
        ("actions", 2, None, "row 3: actions is null"),
        ("episode", 0, 0.5, "column episode holds double, not an integer per row"),
    ],
)
def test_a_malformed_demonstrations_file_is_refused_naming_its_row(tmp_path, column, row, value, message):
    with pytest.raises(UserError, match=f"demos.parquet: {message}"):
        read_episodes(edited(tmp_path, column, row, value))


def test_demonstrations_of_another_space_than_the_envs_are_refused(tmp_path):
    path = tmp_path / "demos.parquet"
    write_episodes(path, episodes())
    demos = read_episodes(path)
    check_fits(path, demos, "cartpole", 1, 2, 1)  # one observation number, actions 0 and 1: fits
    with pytest.raises(UserError, match="observations of 1 number; nav2d's have 2"):
        check_fits(path, demos, "nav2d", 2, None, 2)
    with pytest.raises(UserError, match="actions of 1 number; pendulum's have 2"):
        check_fits(path, demos, "pendulum", 1, None, 2)
    demos[1].actions[0] = 3
    with pytest.raises(UserError, match="cartpole's actions are one of 0 to 1, not 3"):
        check_fits(path, demos, "cartpole", 1, 2, 1)
    write_episodes(path, [])
    with pytest.raises(UserError, match="no demonstrations"):
        read_episodes(path)


def test_an_episode_that_terminates_early_gets_one_absorbing_row_weighing_the_steps_it_misses():
    t = episode_transitions(episodes(), horizon=5, n_actions=2)
    # 5 real steps; the 2-step episode terminated: 5 - 2 = 3 absorbing steps; the cut one pads nothing
    assert t.weight.tolist() == [1, 1, 1, 1, 1, 3]
    assert t.absorbing.tolist() == [False] * 5 + [True]
    assert t.next_absorbing.tolist() == [False, True, False, False, False, True]
    assert t.actions.tolist()[:2] == [[1.0, 0.0], [0.0, 1.0]]  # one-hot
    assert t.next_obs[:, 0].tolist()[:5] == [1.0, 2.0, 6.0, 7.0, 8.0]


def test_minibatches_are_drawn_in_proportion_to_the_weights():
    t = episode_transitions(episodes(), horizon=5, n_actions=2)
    drawn = sample(t, 8000, torch.Generator().manual_seed(0))
    assert float(drawn.absorbing.float().mean()) == pytest.approx(3 / 8, abs=0.02)
    assert drawn.weight.tolist() == [1.0] * 8000


def test_continuous_actions_reach_the_discriminator_clipped_to_the_range_rllib_maps_onto_the_bounds():
    from drml_ray.irl.demos import encode_actions

    assert encode_actions(torch.tensor([[2.7, -0.5], [-3.0, 1.0]]), None).tolist() == [[1.0, -0.5], [-1.0, 1.0]]


def test_drml_data_inspect_lists_the_demonstrations_of_a_folder_and_describes_one(tmp_path):
    from typer.testing import CliRunner

    from drml_ray.cli import app

    write_episodes(tmp_path / "experts" / "cartpole" / "transitions.parquet", episodes())
    result = CliRunner().invoke(app, ["data", "inspect", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "2 demonstrations, 5 steps, 1 terminated / 1 cut by the horizon; true return 2.5 ± 0.5" in result.output
    (tmp_path / "experts" / "cartpole" / "rllib" / "taskcartpole").mkdir(parents=True)  # RLlib's recording
    rllib = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "experts" / "cartpole" / "rllib")])
    assert rllib.exit_code == 2 and f"inspect {tmp_path}/experts/cartpole/transitions.parquet" in rllib.output
    empty = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "experts" / "nothing")])
    assert empty.exit_code == 2


def test_coverage_states_fill_the_widened_box_with_random_actions_of_the_space():
    obs, next_obs = torch.tensor([[0.0, 0.0], [1.0, 2.0]]), torch.tensor([[1.0, 2.0], [2.0, 2.0]])
    seen = transitions(obs, torch.tensor([0, 1]), next_obs, torch.tensor([False, False]), torch.tensor([0, 1]), 2, 3)
    rows = coverage_states([seen], 500, 0.25, torch.Generator().manual_seed(0), 3)
    # states seen span x 0..2 and y 0..2; a quarter of that more on each side: -0.5..2.5
    assert rows.obs.min().item() >= -0.5 and rows.obs.max().item() <= 2.5
    assert rows.obs.min().item() < -0.4 and rows.obs.max().item() > 2.4
    assert torch.equal(rows.next_obs, rows.obs) and not rows.absorbing.any() and not rows.next_absorbing.any()
    assert torch.equal(rows.actions.sum(1), torch.ones(500)) and set(rows.actions.argmax(1).tolist()) == {0, 1, 2}


def test_the_policy_history_is_a_uniform_sample_of_every_batch_offered_and_keeps_their_columns():
    # rows 0..9,999 offered in batches of 100 into 1,000 slots: a uniform sample has mean 4,999.5 (std of the
    # mean ~87) and ~100 rows below 1,000 (std ~9); a buffer of the newest rows would have mean ~9,500 and none
    gen, kept = torch.Generator().manual_seed(0), None
    for start in range(0, 10_000, 100):
        values = torch.arange(start, start + 100, dtype=torch.float32)[:, None]
        no_end = torch.zeros(100, dtype=torch.bool)
        batch = transitions(values, values, values + 0.5, no_end, torch.zeros(100), 50, None)
        kept = keep_history(kept, batch, start, 1_000, gen)
    assert kept is not None and len(kept.obs) == 1_000 and len(set(kept.obs.flatten().tolist())) == 1_000
    assert abs(float(kept.obs.mean()) - 4_999.5) < 400 and 50 <= int((kept.obs < 1_000).sum()) <= 150
    torch.testing.assert_close(kept.next_obs, kept.obs + 0.5)  # a row's columns travel together
    torch.testing.assert_close(kept.actions, kept.obs.clamp(-1.0, 1.0))
