"""Demonstrations as plain arrays: the flat Parquet file ``pandas`` reads, episodes, and the discriminator's
transitions (with the absorbing rows of :mod:`drml_ray.irl.losses`). Nothing here imports Ray or RLlib.

``transitions.parquet`` has one row per step: ``episode``, ``t`` (the step in its episode), ``obs``,
``actions``, ``rewards`` (the true reward), ``new_obs``, ``terminated`` and ``truncated``. RLlib's own
recording of the same episodes (``rllib/``, read by RLlib's BC) sits beside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from drml_ray.data.parquet import write_table
from drml_ray.errors import UserError
from drml_ray.irl.losses import Transitions
from drml_ray.text import counted

COLUMNS = ("episode", "t", "obs", "actions", "rewards", "new_obs", "terminated", "truncated")


@dataclass
class Episode:
    """One episode: ``obs`` has one more row than ``actions`` (the state after the last step)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool

    @property
    def ret(self) -> float:
        return float(self.rewards.sum())


def write_episodes(path: str | os.PathLike[str], episodes: list[Episode]) -> None:
    """The flat Parquet file of ``episodes`` (written atomically)."""
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    for number, ep in enumerate(episodes):
        steps = len(ep.actions)
        for t in range(steps):
            last = t == steps - 1
            values = (number, t, ep.obs[t].tolist(), np.ravel(ep.actions[t]).tolist(), float(ep.rewards[t]),
                      ep.obs[t + 1].tolist(), last and ep.terminated, last and not ep.terminated)  # fmt: skip
            for column, value in zip(COLUMNS, values, strict=True):
                rows[column].append(value)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_table(path, pa.table(rows))


def read_episodes(path: str | os.PathLike[str], count: int | None = None) -> list[Episode]:
    """The first ``count`` episodes (all: ``None``) of a flat demonstrations file; a missing or malformed
    file, or too few episodes, is the user's error naming the file (and the row where one is at fault)."""
    table = _read_table(path)
    by_episode: dict[int, list[int]] = {}
    for row, number in enumerate(table["episode"]):
        by_episode.setdefault(number, []).append(row)
    if count is not None and len(by_episode) < count:
        raise UserError(f"{path}: {counted(len(by_episode), 'demonstration')}, {count} asked for (irl.demos); "
                        "record more with drml rl expert (expert.episodes)")  # fmt: skip
    episodes = []
    for number in sorted(by_episode)[:count]:
        rows = sorted(by_episode[number], key=lambda r: table["t"][r])
        _check_steps(path, number, rows, table)
        obs = [table["obs"][r] for r in rows] + [table["new_obs"][rows[-1]]]
        episodes.append(Episode(np.asarray(obs, dtype=np.float32), np.asarray([table["actions"][r] for r in rows]),
                                np.asarray([table["rewards"][r] for r in rows], dtype=np.float64),
                                bool(table["terminated"][rows[-1]])))  # fmt: skip
    return episodes


def _read_table(path: str | os.PathLike[str]) -> dict[str, list]:
    """The columns of a demonstrations file, each checked: its type, no nulls, vectors of one width, finite
    numbers, and at least one row."""
    if not Path(path).is_file():
        raise UserError(f"{path}: no demonstrations file there (drml rl expert records it)")
    try:
        table = pq.read_table(path, columns=list(COLUMNS))
    except (pa.ArrowInvalid, KeyError, OSError) as err:
        raise UserError(f"{path}: not a demonstrations file of drml rl expert ({err})") from None
    if not table.num_rows:
        raise UserError(f"{path}: no demonstrations (0 rows)")
    columns: dict[str, list] = {}
    for name in COLUMNS:
        kind = table.schema.field(name).type
        wanted = "a list of numbers" if name in VECTORS else KINDS[name][0]
        item = kind.value_type if name in VECTORS and _is_list(kind) else kind
        if (name in VECTORS) != _is_list(kind) or not any(ok(item) for ok in KINDS[name][1:]):
            raise UserError(f"{path}: column {name} holds {kind}, not {wanted} per row")
        columns[name] = table.column(name).to_pylist()
        _check_values(path, name, columns[name])
    if len(columns["obs"][0]) != len(columns["new_obs"][0]):
        raise UserError(f"{path}: obs has {len(columns['obs'][0])} numbers per row, new_obs "
                        f"{len(columns['new_obs'][0])}")  # fmt: skip
    return columns


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


VECTORS = ("obs", "actions", "new_obs")
_NUMBER = ("a number", pa.types.is_integer, pa.types.is_floating)
_INTEGER, _FLAG = ("an integer", pa.types.is_integer), ("true or false", pa.types.is_boolean)
KINDS = {"episode": _INTEGER, "t": _INTEGER, "obs": _NUMBER, "actions": _NUMBER, "rewards": _NUMBER,
         "new_obs": _NUMBER, "terminated": _FLAG, "truncated": _FLAG}  # fmt: skip
"""Each column's kind of value (per element of a vector column): its name in messages, the Arrow type tests."""


def _check_values(path: str | os.PathLike[str], name: str, rows: list) -> None:
    """No null, a vector column's rows of one width, and finite numbers."""
    nulls = [row for row, v in enumerate(rows) if v is None or (name in VECTORS and None in v)]
    if nulls:
        raise UserError(f"{path}: row {nulls[0] + 1}: {name} is null")
    if name in VECTORS:
        widths = [len(v) for v in rows]
        odd = next((row for row, w in enumerate(widths) if w != widths[0] or not w), None)
        if odd is not None:
            raise UserError(f"{path}: row {odd + 1}: {name} has {counted(widths[odd], 'number')}, row 1 {widths[0]}")
    values = [x for v in rows for x in v] if name in VECTORS else rows
    if name not in ("terminated", "truncated") and not np.isfinite(np.asarray(values, dtype=np.float64)).all():
        row = next(r for r, v in enumerate(rows) if not np.isfinite(np.asarray(v, np.float64)).all())
        raise UserError(f"{path}: row {row + 1}: {name} is not a finite number")


def _check_steps(path: str | os.PathLike[str], number: int, rows: list[int], table: dict[str, list]) -> None:
    """An episode's rows are its steps 0, 1, 2, ... once each, every one but the last neither terminated nor
    truncated."""
    steps = [table["t"][r] for r in rows]
    wrong = next((i for i, step in enumerate(steps) if step != i), None)
    if wrong is not None:
        what = f"step {steps[wrong]} twice" if wrong and steps[wrong] == steps[wrong - 1] else f"no step {wrong}"
        raise UserError(f"{path}: episode {number} has {what}: its rows are its steps 0, 1, 2, ... once each")
    ended = next((r for r in rows[:-1] if table["terminated"][r] or table["truncated"][r]), None)
    if ended is not None:
        raise UserError(f"{path}: row {ended + 1}: episode {number} ends at step {table['t'][ended]} but goes on "
                        f"to step {len(rows) - 1}")  # fmt: skip


def check_fits(path: str | os.PathLike[str], episodes: list[Episode], env: str, obs_dim: int, n_actions: int | None,
               action_dim: int) -> None:  # fmt: skip
    """Refuse demonstrations that ``env``'s spaces cannot hold: another observation width, or actions that are not
    its ``n_actions`` discrete choices (``None``: ``action_dim`` numbers each)."""
    width, actions = episodes[0].obs.shape[1], np.concatenate([ep.actions for ep in episodes])
    if width != obs_dim:
        raise UserError(f"{path}: observations of {counted(width, 'number')}; {env}'s have {obs_dim}")
    got = actions.reshape(len(actions), -1).shape[1]
    if n_actions is None:
        if got != action_dim:
            raise UserError(f"{path}: actions of {counted(got, 'number')}; {env}'s have {action_dim}")
        return
    outside = actions[~np.isin(actions, np.arange(n_actions))] if got == 1 else actions[:1]
    if len(outside):
        raise UserError(f"{path}: {env}'s actions are one of 0 to {n_actions - 1}, not {outside[0].tolist()}")


def encode_actions(actions: torch.Tensor, n_actions: int | None) -> torch.Tensor:
    """Actions as the discriminator's input: one-hot for a discrete space of ``n_actions``; else the policy's
    output clipped to [-1, 1], the range RLlib maps onto the action bounds (an output beyond it acts as its
    bound, so a deterministic expert's 2.7 and a policy's 1.0 are the same action and must look the same)."""
    if n_actions is None:
        return actions.reshape(len(actions), -1).float().clamp(-1.0, 1.0)
    return torch.nn.functional.one_hot(actions.reshape(-1).long(), n_actions).float()


def transitions(obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor, terminated: torch.Tensor,
                steps: torch.Tensor, horizon: int, n_actions: int | None,
                logp: torch.Tensor | None = None) -> Transitions:  # fmt: skip
    """Real transitions (``steps``: each one's index in its episode), then one absorbing row of weight
    ``horizon - T`` for each episode that terminated after ``T`` steps short of the horizon."""
    terminated = terminated.bool()
    remaining = torch.where(terminated, horizon - (steps + 1), 0).clamp(min=0)
    pad = remaining > 0
    n, k = len(obs), int(pad.sum())
    acts = encode_actions(actions, n_actions)
    return Transitions(
        obs=torch.cat([obs.float(), torch.zeros(k, obs.shape[1])]),
        actions=torch.cat([acts, torch.zeros(k, acts.shape[1])]),
        next_obs=torch.cat([next_obs.float(), torch.zeros(k, obs.shape[1])]),
        absorbing=torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(k, dtype=torch.bool)]),
        next_absorbing=torch.cat([terminated, torch.ones(k, dtype=torch.bool)]),
        logp=torch.cat([logp.float() if logp is not None else torch.zeros(n), torch.zeros(k)]),
        weight=torch.cat([torch.ones(n), remaining[pad].float()]),
    )


def episode_transitions(episodes: list[Episode], horizon: int, n_actions: int | None) -> Transitions:
    """The discriminator's expert side: every step of ``episodes`` and their absorbing rows."""
    obs = torch.as_tensor(np.concatenate([ep.obs[:-1] for ep in episodes]))
    next_obs = torch.as_tensor(np.concatenate([ep.obs[1:] for ep in episodes]))
    actions = torch.as_tensor(np.concatenate([ep.actions for ep in episodes]))
    ends = [np.arange(len(ep.actions)) == len(ep.actions) - 1 for ep in episodes]
    terminated = torch.as_tensor(np.concatenate([e & ep.terminated for e, ep in zip(ends, episodes, strict=True)]))
    steps = torch.as_tensor(np.concatenate([np.arange(len(ep.actions)) for ep in episodes]))
    return transitions(obs, actions, next_obs, terminated, steps, horizon, n_actions)


FIELDS = tuple(Transitions.__dataclass_fields__)


def take(t: Transitions, rows: torch.Tensor | slice) -> Transitions:
    """The rows ``rows`` (indices or a slice) of ``t``."""
    return Transitions(*(getattr(t, f)[rows] for f in FIELDS))


def sample(t: Transitions, n: int, generator: torch.Generator) -> Transitions:
    """``n`` rows drawn in proportion to their weights, each of weight 1 (an unbiased minibatch)."""
    rows = torch.multinomial(t.weight, n, replacement=True, generator=generator)
    return replace(take(t, rows), weight=torch.ones(n))


def cat(parts: list[Transitions]) -> Transitions:
    """The rows of ``parts``, one after another."""
    return Transitions(*(torch.cat([getattr(t, f) for t in parts]) for f in FIELDS))


def keep_history(
    history: Transitions | None, new: Transitions, seen: int, size: int, generator: torch.Generator
) -> Transitions:
    """A uniform sample of ``size`` rows of every row offered so far (reservoir sampling, Vitter's algorithm R):
    ``history`` holds it for the first ``seen`` rows, ``new`` are the next ones. While slots are free, a row
    takes the next one; after that row ``i`` (``seen + i`` offered before it) takes slot ``j``, drawn from
    ``0 .. seen + i``, if ``j < size`` (the last row drawing a slot wins it, as one row at a time would).

    >>> row = lambda v: Transitions(*(torch.tensor(x) for x in ([[v]], [[0.0]], [[v]], [False], [False], [0.0], [1.0])))
    >>> kept = keep_history(None, cat([row(0.0), row(1.0)]), 0, 3, torch.Generator().manual_seed(0))
    >>> kept.obs.flatten().tolist()
    [0.0, 1.0]
    >>> keep_history(kept, cat([row(2.0), row(3.0)]), 2, 3, torch.Generator().manual_seed(0)).obs.flatten().tolist()
    [0.0, 1.0, 2.0]
    """
    index = seen + torch.arange(len(new.obs))
    draws = (torch.rand(len(index), generator=generator) * (index + 1)).long()
    grow = int((index < size).sum())  # the first rows fill the free slots, in order
    kept = take(new, slice(0, grow)) if history is None else cat([history, take(new, slice(0, grow))])
    last = {j: i for i, j in enumerate(draws.tolist()) if i >= grow and j < size}
    if not last:
        return kept
    slots, rows = torch.tensor(list(last)), torch.tensor(list(last.values()))
    return Transitions(*(getattr(kept, f).index_put((slots,), getattr(new, f)[rows]) for f in FIELDS))


def coverage_states(sides: list[Transitions], count: int, margin: float, generator: torch.Generator,
                    n_actions: int | None) -> Transitions:  # fmt: skip
    """``count`` states drawn uniformly from the box around every (non-absorbing) state of ``sides``, widened by
    ``margin`` times its extent on each side, each its own next state, with uniformly random actions (one-hot
    of ``n_actions``, or in [-1, 1]): negatives that keep a discriminator from extrapolating past the states it
    saw (:mod:`drml_ray.irl.meta`).

    >>> one = Transitions(*(torch.tensor(v) for v in ([[0.0, 0.0], [2.0, 1.0]], [[0.0], [0.0]],
    ...       [[0.0, 0.0], [2.0, 1.0]], [False, False], [False, False], [0.0, 0.0], [1.0, 1.0])))
    >>> box = coverage_states([one], 1000, 0.5, torch.Generator().manual_seed(0), None).obs
    >>> box.min(0).values.round(decimals=1).tolist(), box.max(0).values.round(decimals=1).tolist()
    ([-1.0, -0.5], [3.0, 1.5])
    """
    seen = torch.cat([torch.cat([t.obs[~t.absorbing], t.next_obs[~t.next_absorbing]]) for t in sides])
    low, high = seen.min(0).values, seen.max(0).values
    low, high = low - margin * (high - low), high + margin * (high - low)
    states = low + (high - low) * torch.rand(count, seen.shape[1], generator=generator)
    no = torch.zeros(count, dtype=torch.bool)
    if n_actions is None:
        actions = 2 * torch.rand(count, sides[0].actions.shape[1], generator=generator) - 1
    else:
        actions = encode_actions(torch.randint(n_actions, (count,), generator=generator), n_actions)
    return Transitions(states, actions, states, no, no, torch.zeros(count), torch.ones(count))


def is_demonstrations(path: Path) -> bool:
    """A Parquet file with the columns of ``transitions.parquet``."""
    if path.suffix != ".parquet":
        return False
    try:
        return set(COLUMNS) <= set(pq.read_schema(path).names)
    except (pa.ArrowInvalid, OSError):
        return False


def describe(path: Path) -> str:
    """One line on a demonstrations file: episodes, steps, how they ended, their true returns."""
    episodes = read_episodes(path)
    returns = np.array([ep.ret for ep in episodes])
    ended = sum(ep.terminated for ep in episodes)
    return (f"{path}: {counted(len(episodes), 'demonstration')}, {sum(len(ep.actions) for ep in episodes):,} steps, "
            f"{ended} terminated / {len(episodes) - ended} cut by the horizon; true return {returns.mean():.1f} "
            f"± {returns.std():.1f} (min {returns.min():.1f}, max {returns.max():.1f})")  # fmt: skip
