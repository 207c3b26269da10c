"""``drml rl expert`` and ``drml rl irl``: the Ray side of inverse RL.

``drml rl expert`` trains one PPO expert per family (jobs on the actor pool), then records its demonstrations on
the driver with RLlib's offline API (Ray Data writes them, so no actor may hold the CPUs meanwhile):
``<run>/experts/<family>/`` holds ``weights.pt``, ``rllib/`` (RLlib's episode Parquet), ``transitions.parquet``
(flat, for pandas) and ``expert.json`` (true returns of the expert, of its demonstrations and of a random policy).

``drml rl irl`` runs every (method, family, demonstrations, seed) cell: GAIL and AIRL on RLlib PPO with the
learned reward as jobs on the pool, then BC on RLlib's BC on the driver (its offline reader is Ray Data too). Each
finished cell is kept in ``irl_cells.json`` at once,
so an interrupted comparison resumes; ``irl.json`` (return ratios), ``irl.md`` and ``irl.png`` come last.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from drml_ray.checkpoints import save_state
from drml_ray.errors import UserError
from drml_ray.irl.config import IRLExperiment
from drml_ray.irl.demos import check_fits, read_episodes
from drml_ray.irl.policy import family_env, n_actions, random_episodes
from drml_ray.irl.worker import DEMOS_FILE, IRLWorker, record_demos
from drml_ray.ray_env import ensure_ray
from drml_ray.runtime.executor import ActorExecutor, Job, actor_factory
from drml_ray.runtime.registry import Prepared
from drml_ray.runtime.rundir import file_digest, open_run
from drml_ray.runtime.runfiles import atomic_write_json, read_json
from drml_ray.text import counted

EXPERTS_FILE = "experts.json"
EXPERT_FILE = "expert.json"
CELLS_FILE = "irl_cells.json"
FREE_KEYS = ("irl", "meta_irl", "tune")
"""What ``drml rl irl`` may change after ``drml rl expert`` (the experts' own settings are checked apart)."""
OnCell = Callable[[dict[str, Any], dict[str, Any]], None]
"""Called as each cell of ``drml rl irl`` finishes: ``(cells so far, experts)``."""


def expert_dir(run_dir: Path, family: str) -> Path:
    return run_dir / "experts" / family


def expert_identity(cfg: IRLExperiment, family: str) -> dict[str, Any]:
    """What makes an expert and its demonstrations: recorded with them, compared by ``drml rl irl``."""
    settings = cfg.families()[family]
    return {"family": family, "task": dict(settings.task), "horizon": settings.horizon_of(family),
            "ppo": cfg.ppo_of(family).model_dump(mode="json"), "expert_iters": settings.expert_iters,
            "episodes": cfg.expert.episodes, "explore": cfg.explore_of(family), "seed": cfg.expert.seed,
            "transfer_task": settings.transfer_task}  # fmt: skip


def pool(cfg: IRLExperiment, jobs: int, label: str) -> ActorExecutor:
    return ActorExecutor(actor_factory(IRLWorker, 1, cpus=1), max(1, min(cfg.irl.workers, jobs)), label=label)


def random_return(family: str, horizon: int, task: dict[str, float], episodes: int) -> float:
    """The true return of uniformly random actions: the zero of the return ratio."""
    return float(np.mean([ep.ret for ep in random_episodes(family_env(family, horizon, task), episodes, 10_000)]))


def run_rl_expert(cfg: IRLExperiment, run_dir: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Train each family's expert and record its demonstrations (an expert already recorded only gets its
    yardstick trained again when ``transfer_iters`` changed); ``experts.json`` is written last."""
    began, families = time.perf_counter(), cfg.families()
    run_dir = Path(run_dir).expanduser().resolve()
    stale = [] if overwrite else [f for f in families if (expert_dir(run_dir, f) / EXPERT_FILE).exists()
                                  and not yardstick_current(cfg, f, read_expert(run_dir, f))]  # fmt: skip
    run_dir = open_run(run_dir, cfg, marker=None if stale else EXPERTS_FILE, overwrite=overwrite, free=FREE_KEYS)
    todo = [f for f in families if not (expert_dir(run_dir, f) / EXPERT_FILE).exists()]
    print(f"[drml] rl expert '{cfg.name}' -> {run_dir}: PPO experts on {', '.join(families)} "
          f"({', '.join(f'{f} {families[f].expert_iters} iterations' for f in todo) or 'all trained'}), "
          f"{counted(cfg.expert.episodes, 'demonstration')} each"
          f"{''.join(f'; {f} yardstick again: {families[f].transfer_iters_of()} iterations' for f in stale)}",
          flush=True)  # fmt: skip
    if todo or stale:
        cfg_json = cfg.model_dump(mode="json")
        jobs = [Job(f"{f} expert", "expert", (cfg_json, f), ppo_steps(cfg, f, expert=True)) for f in todo]
        jobs += [Job(f"{f} yardstick", "yardstick", (cfg_json, f), ppo_steps(cfg, f, yardstick=True)) for f in stale]
        with pool(cfg, len(jobs), "rl expert") as workers:
            results = workers.map(jobs, lambda i, r: f"true return {r['return']:.1f}")
        for family, result in zip(todo, results[: len(todo)], strict=True):
            record_expert(cfg, run_dir, family, result)
        for family, result in zip(stale, results[len(todo) :], strict=True):
            record = read_expert(run_dir, family) | {"transfer": transfer_record(cfg, family, result)}
            atomic_write_json(expert_dir(run_dir, family) / EXPERT_FILE, record)
    summary = {f: load_expert(run_dir, cfg, f) for f in families} | {"wall_s": time.perf_counter() - began}
    atomic_write_json(run_dir / EXPERTS_FILE, summary)
    print(f"[drml] experts done; next: drml rl irl with the same --output-dir ({run_dir})", flush=True)
    return summary


def record_expert(cfg: IRLExperiment, run_dir: Path, family: str, result: dict[str, Any]) -> None:
    """A trained expert's weights, its demonstrations (recorded now) and ``expert.json``."""
    folder, settings = expert_dir(run_dir, family), cfg.families()[family]
    save_state(folder / "weights.pt", {"weights": result["weights"], "family": family, "arch": "ff"})
    episodes = record_demos(cfg, family, result["weights"], folder)
    record = {**expert_identity(cfg, family), "return": result["return"], "curve": result["curve"],
              "train_s": result["train_s"], "demo_returns": [ep.ret for ep in episodes],
              "random_return": random_return(family, settings.horizon_of(family), settings.task,
                                             cfg.irl.eval_episodes)}  # fmt: skip
    if "transfer" in result:
        record["transfer"] = transfer_record(cfg, family, result["transfer"])
    atomic_write_json(folder / EXPERT_FILE, record)
    print(f"[drml] {family}: expert return {record['return']:.1f} (random {record['random_return']:.1f}); "
          f"{counted(len(episodes), 'demonstration')}, return {np.mean(record['demo_returns']):.1f} -> {folder}",
          flush=True)  # fmt: skip
    if record["return"] <= record["random_return"]:
        print(f"[drml] warning: {no_better_than_random(family, record)}", flush=True)


def transfer_record(cfg: IRLExperiment, family: str, yardstick: dict[str, Any]) -> dict[str, Any]:
    settings = cfg.families()[family]
    task = settings.transfer_task or {}
    return yardstick | {"task": task, "random_return": random_return(family, settings.horizon_of(family), task,
                                                                     cfg.irl.eval_episodes)}  # fmt: skip


def read_expert(run_dir: Path, family: str) -> dict[str, Any]:
    from drml_ray.irl.results import Expert

    return read_json(expert_dir(run_dir, family) / EXPERT_FILE, schema=Expert)


def yardstick_current(cfg: IRLExperiment, family: str, record: dict[str, Any]) -> bool:
    """Whether ``record``'s yardstick of reward transfer (if its family has one) was trained for as many iterations
    as ``cfg`` trains the policy on AIRL's reward (an expert recorded for other settings is not judged here)."""
    settings = cfg.families()[family]
    if settings.transfer_task is None or any(record.get(k) != v for k, v in expert_identity(cfg, family).items()):
        return True
    return len(record.get("transfer", {}).get("curve", [])) == settings.transfer_iters_of()


def load_expert(run_dir: Path, cfg: IRLExperiment, family: str) -> dict[str, Any]:
    """A family's ``expert.json``, refused if missing or recorded for other settings than ``cfg``'s."""
    path = expert_dir(run_dir, family) / EXPERT_FILE
    if not path.exists():
        raise UserError(f"{path}: no expert for {family}; run `drml rl expert` with the same config and "
                        "--output-dir first")  # fmt: skip
    record = read_expert(run_dir, family)
    differ = [k for k, v in expert_identity(cfg, family).items() if record.get(k) != v]
    if differ:
        raise UserError(f"{path}: the {family} expert was trained with other {', '.join(differ)} than this config's "
                        "(irl.families / ppo / expert); rerun `drml rl expert` with --overwrite or another "
                        "--output-dir")  # fmt: skip
    if not yardstick_current(cfg, family, record):
        raise UserError(f"{path}: the {family} yardstick of reward transfer (PPO on the true reward of "
                        f"transfer_task) trained {len(record['transfer']['curve'])} iterations, this config's "
                        f"transfer_iters (default: iters) is {cfg.families()[family].transfer_iters_of()}; run "
                        "`drml rl expert` with this config and that --output-dir: it trains the yardstick again "
                        "and keeps the expert")  # fmt: skip
    if record["return"] == record["random_return"]:  # every ratio would divide by 0
        raise UserError(f"{path}: {no_better_than_random(family, record)}; rerun `drml rl expert` with --overwrite")
    if record["return"] < record["random_return"]:
        print(f"[drml] warning: {no_better_than_random(family, record)}", flush=True)
    check_demos(run_dir, cfg, family)
    return {k: v for k, v in record.items() if k not in ("curve", "ppo")}


def check_demos(run_dir: Path, cfg: IRLExperiment, family: str) -> None:
    """A family's demonstrations read whole on the driver: a malformed file, or one the family's env cannot take,
    is refused here, not in an actor minutes into the run."""
    settings, path = cfg.families()[family], expert_dir(run_dir, family) / DEMOS_FILE
    env = family_env(family, settings.horizon_of(family), settings.task)
    discrete = n_actions(env.action_space)
    check_fits(path, read_episodes(path, max(cfg.irl.demos)), family, int(env.observation_space.shape[0]), discrete,
               1 if discrete else int(env.action_space.shape[0]))  # fmt: skip


def no_better_than_random(family: str, record: dict[str, Any]) -> str:
    """What is wrong with an expert whose return is no better than a random policy's: return ratios divide by the
    difference, so they are undefined (equal returns: refused) or upside down (a worse expert: said)."""
    return (f"the {family} expert's return ({record['return']:.1f}) is no better than a random policy's "
            f"({record['random_return']:.1f}), so return ratios against it mean nothing: train it longer "
            f"(irl.families.{family}.expert_iters) or on a longer horizon")  # fmt: skip


# --- drml rl irl ------------------------------------------------------------------------------------


def disc_budget(cfg: IRLExperiment, method: str, family: str | None = None) -> dict[str, Any]:
    """``method``'s discriminator settings as kept cells record them (coverage, history and AIRL's log pi term
    only when not at their defaults: cells measured before they existed stay valid)."""
    disc = cfg.disc_of(method, family)
    off = (set() if disc.coverage else {"coverage", "coverage_margin"}) | (set() if disc.history else {"history"})
    off |= {"policy_logp"} if disc.policy_logp else set()
    return disc.model_dump(mode="json", exclude=off)


def cell_budget(cfg: IRLExperiment, family: str, method: str) -> dict[str, Any]:
    """What a kept cell must have been measured with to be reused."""
    irl = cfg.irl
    common = {
        "eval_episodes": irl.eval_episodes,
        "hidden": cfg.ppo_of(family).hidden,
        "transfer_task": cfg.families()[family].transfer_task,
    }
    if method == "bc":
        return common | {"bc_iters": irl.bc_iters, "bc_batch": irl.bc_batch, "bc_std": "state-independent"}
    settings = cfg.families()[family]
    optional = {} if settings.lr_final is None else {"lr_final": settings.lr_final}
    if method == "airl" and settings.transfer_iters is not None:  # AIRL's cells train the reward-transfer policy
        optional["transfer_iters"] = settings.transfer_iters
    return common | optional | {"iters": settings.iters, "disc": disc_budget(cfg, method, family),
                             "ppo": cfg.ppo_of(family).model_dump(mode="json")}  # fmt: skip


def demo_digests(cfg: IRLExperiment, root: Path) -> dict[str, str]:
    """A hash of each family's demonstrations file: a cell measured on other demonstrations (an expert recorded
    again, a file replaced in ``irl.experts_dir``) is measured again."""
    return {family: file_digest(expert_dir(root, family) / DEMOS_FILE) for family in cfg.families()}


def current(cfg: IRLExperiment, cells: dict[str, Any], digests: dict[str, str]) -> dict[str, Any]:
    """The cells of ``cfg``'s families measured with its budget and on the demonstrations of ``digests``
    (:func:`demo_digests`; a cell from before they were recorded is kept); the others stay in the file until
    measured again."""
    families = cfg.families()
    return {k: c for k, c in cells.items() if (family := k.split("/")[1]) in families
            and c.get("budget") == cell_budget(cfg, family, k.split("/")[0])
            and c.get("demonstrations", digests[family]) == digests[family]}  # fmt: skip


def cells_to_run(cfg: IRLExperiment, cells: dict[str, Any], digests: dict[str, str],
                 ) -> list[tuple[str, str, int, int]]:  # fmt: skip
    """The (method, family, demonstrations, seed) cells ``cfg`` asks for that ``cells`` lacks at its budget.

    >>> cfg = IRLExperiment.model_validate({"name": "x", "irl": {"methods": ["gail"], "demos": [4], "seeds": [1, 2]}})
    >>> done = {"budget": cell_budget(cfg, "nav2d", "gail")}
    >>> cells_to_run(cfg, {"gail/nav2d/4/1": done, "gail/nav2d/4/2": {}, "gail/cartpole/4/1": done}, {"nav2d": "a1"})
    [('gail', 'nav2d', 4, 2)]
    """
    irl, done = cfg.irl, current(cfg, cells, digests)
    return [(m, f, n, s) for f in cfg.families() for n in irl.demos for m in irl.methods for s in irl.seeds
            if f"{m}/{f}/{n}/{s}" not in done]  # fmt: skip


def ppo_steps(cfg: IRLExperiment, family: str, *, expert: bool = False, yardstick: bool = False,
              reward_transfer: bool = False) -> float:  # fmt: skip
    """The environment steps of the PPO runs a job trains: a job's cost, for the pool's time-left estimate and
    its order. An expert (with its yardstick when there is a ``transfer_task``), a yardstick alone, or a GAIL or
    AIRL cell (with AIRL's reward transfer). In the shipped config a Pendulum cell is 3x a Nav2D one.

    >>> nav2d = {"iters": 10, "expert_iters": 20, "transfer_task": {"action_scale": 0.5}, "transfer_iters": 30}
    >>> ppo = {"train_batch": 100, "minibatch": 50}
    >>> cfg = IRLExperiment.model_validate({"name": "x", "ppo": ppo, "irl": {"families": {"nav2d": nav2d}}})
    >>> ppo_steps(cfg, "nav2d"), ppo_steps(cfg, "nav2d", reward_transfer=True), ppo_steps(cfg, "nav2d", expert=True)
    (1000.0, 4000.0, 5000.0)
    """
    settings = cfg.families()[family]
    transfer = settings.transfer_iters_of() if settings.transfer_task is not None else 0
    if yardstick:
        iterations = transfer
    elif expert:
        iterations = settings.expert_iters + transfer
    else:
        iterations = settings.iters + (transfer if reward_transfer else 0)
    return float(iterations * cfg.ppo_of(family).train_batch)


def cell_job(cfg: IRLExperiment, cfg_json: dict, key: tuple[str, str, int, int], folder: Path) -> Job:
    """One cell's job; AIRL's reward is carried to the ``transfer_task`` from the most demonstrations."""
    method, family, demos, seed = key
    name = f"{method} {family} {demos} demos seed {seed}"
    if method == "bc":
        return Job(name, "bc", (cfg_json, family, demos, seed, str(folder)))
    reward_transfer = demos == max(cfg.irl.demos)
    cost = ppo_steps(cfg, family, reward_transfer=reward_transfer and method == "airl")
    return Job(name, "adversarial", (cfg_json, family, method, demos, seed, str(folder), reward_transfer), cost)


def run_rl_irl(cfg: IRLExperiment, run_dir: str | Path, *, on_cell: OnCell | None = None) -> dict[str, Any]:
    """Every (method, family, demonstrations, seed) cell, then ``irl.json`` (return ratios), ``irl.md``, ``irl.png``.
    ``on_cell`` hears of each finished cell (``drml tune`` reports from it)."""
    from drml_ray.irl.results import read_cells, write_irl_outputs

    run_dir = Path(run_dir).expanduser().resolve()
    root = Path(cfg.irl.experts_dir) if cfg.irl.experts_dir else run_dir
    experts = {f: load_expert(root, cfg, f) for f in cfg.families()}  # before touching anything
    digests = demo_digests(cfg, root)
    run_dir = open_run(run_dir, cfg, marker=None, free=FREE_KEYS)
    irl, cells_path = cfg.irl, run_dir / CELLS_FILE
    cells = read_cells(cells_path)
    keys = cells_to_run(cfg, cells, digests)
    stale = sum("/".join(map(str, k)) in cells for k in keys)
    print(f"[drml] rl irl -> {run_dir}: {', '.join(irl.methods)} on {', '.join(cfg.families())}, {irl.demos} "
          f"demonstrations, seeds {irl.seeds}; {len(keys)} cells to run ({len(current(cfg, cells, digests))} kept"
          f"{f'; {stale} of them measured before with another budget or on other demonstrations' if stale else ''})",
          flush=True)  # fmt: skip
    cfg_json = cfg.model_dump(mode="json")

    def keep(key: tuple[str, str, int, int], result: dict[str, Any]) -> str:
        method, family, demos, seed = key
        if "reward" in result:
            save_state(run_dir / "rewards" / method / family / f"{demos}demos_seed{seed}.pt", result.pop("reward"))
        cells["/".join(map(str, key))] = result | {"budget": cell_budget(cfg, family, method),
                                                   "demonstrations": digests[family]}  # fmt: skip
        atomic_write_json(cells_path, cells)
        if on_cell:
            on_cell(current(cfg, cells, digests), experts)
        return f"true return {result['return']:.1f} (expert {experts[family]['return']:.1f})"

    # the longest cells first, so that no actor waits at the end for one long cell (results are per cell anyway)
    pairs = sorted(((k, cell_job(cfg, cfg_json, k, expert_dir(root, k[1]))) for k in keys if k[0] != "bc"),
                   key=lambda pair: -pair[1].cost)  # fmt: skip
    adversarial, jobs = [key for key, _ in pairs], [job for _, job in pairs]
    if adversarial:
        with pool(cfg, len(jobs), "rl irl") as workers:
            workers.map(jobs, lambda index, result: keep(adversarial[index], result))
    # BC reads through Ray Data, whose tasks need CPUs that no actor holds: on the driver, after the pool
    bc = [k for k in keys if k[0] == "bc"]
    if bc:
        ensure_ray()
    for i, key in enumerate(bc, 1):
        job = cell_job(cfg, cfg_json, key, expert_dir(root, key[1]))
        print(
            f"[drml] [{i}/{len(bc)}] {job.name}: {keep(key, getattr(IRLWorker(), job.method)(*job.args))}", flush=True
        )
    return write_irl_outputs(cfg, run_dir, experts, current(cfg, cells, digests))


# --- drml tune: a trial runs the cells of its params against experts trained once ------------------------


def prepare_search(cfg: IRLExperiment) -> Prepared:
    if not cfg.irl.experts_dir:
        raise UserError(f"{cfg.name}: drml tune needs irl.experts_dir, a finished `drml rl expert` run of this "
                        "config whose demonstrations every trial imitates")  # fmt: skip
    root = Path(cfg.irl.experts_dir)
    for family in cfg.families():
        load_expert(root, cfg, family)
    what = f"inverse RL ({', '.join(cfg.irl.methods)}) on the experts of {root}; the mean return ratio is the metric"
    inputs = {f"the {family} demonstrations": digest for family, digest in demo_digests(cfg, root).items()}
    return Prepared(None, what, inputs)


def search_trial(cfg: IRLExperiment, trial_dir: Path, shared: None, callbacks: Any) -> None:
    """One trial: every cell of its params, reporting the mean return ratio of the cells finished so far."""
    from ray import tune  # RAY

    from drml_ray.irl.results import ratio

    started = time.perf_counter()

    def on_cell(cells: dict[str, Any], experts: dict[str, Any]) -> None:
        ratios = [ratio(c["return"], experts[k.split("/")[1]]) for k, c in cells.items()]
        tune.report({"epoch": len(cells), "return_ratio": statistics.fmean(ratios),  # RAY
                     "checkpoint_path": str(trial_dir / "run"), "train_s": time.perf_counter() - started})  # fmt: skip

    run_rl_irl(cfg, trial_dir / "run", on_cell=on_cell)
