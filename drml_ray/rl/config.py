"""The reinforcement-learning experiment file (``drml rl meta-train | meta-eval | transfer``): the task family,
PPO, Reptile over PPO, the adaptation evaluation and cross-domain transfer. The inverse-RL kind extends it
(:mod:`drml_ray.irl.config`)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import model_validator

from drml_ray.config import ActorSettings, Count, Discount, Distinct, Experiment, NonNegativeFloat, Rate, Section, Seed

RLFamily = Literal["nav2d", "cartpole", "pendulum"]
RLMethod = Literal["meta", "multitask", "rl2", "scratch", "oracle"]


class RLEnvSettings(Section):
    """The task family and its fixed (non-task) settings."""

    family: RLFamily = "nav2d"
    """Task family: ``nav2d`` (goals), ``cartpole`` (pole length/mass, cart mass, gravity), ``pendulum`` (m, l)."""
    horizon: Count | None = None
    """Episode length; default: 100 for ``nav2d``, gymnasium's limits for ``cartpole`` (500) and ``pendulum`` (200)."""


class PPOSettings(Section):
    """RLlib PPO as the inner learner: one ``train()`` call is one PPO iteration."""

    hidden: list[int] = [64, 64]
    """Hidden layers of the policy and value networks (separate, not shared)."""
    free_log_std: bool = False
    """Continuous actions: a state-independent log standard deviation (the MAML paper's Gaussian policy)
    instead of one computed by the policy network (not for ``rl2``: RLlib's LSTM module does not take it)."""
    lstm_cell_size: Count = 64
    """The ``rl2`` method's LSTM size (its input: observation, previous action and reward)."""
    max_seq_len: Count = 20
    """The ``rl2`` method's truncated-BPTT length."""
    train_batch: Count = 2000
    """Environment steps per PPO iteration (Nav2D: 20 episodes of 100 steps, as in the MAML paper)."""
    envs: Count = 10
    """Environments stepped side by side in each learner (one batched forward pass per step)."""
    gamma: Discount = 0.99
    """Discount factor of returns."""
    gae_lambda: Discount = 0.95
    """GAE's lambda (bias-variance trade-off of the advantage estimate)."""
    lr: Rate = 3e-3
    """Adam learning rate of PPO (the inner-loop learning rate of Reptile); its state is reset per task."""
    minibatch: Count = 500
    """SGD minibatch of a PPO epoch."""
    epochs: Count = 4
    """PPO epochs over each batch."""
    clip: Rate = 0.2
    """PPO's ratio clip."""
    vf_clip: Rate = 100.0
    """Clip of the value-function loss (returns here reach -100s, so RLlib's default 10 is too small)."""
    entropy_coeff: NonNegativeFloat = 0.0
    """Entropy bonus of PPO's loss (keeps exploration up, which a policy that must adapt fast needs)."""

    def check(self) -> None:
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden {self.hidden}: give at least one layer, each of at least 1 unit")
        if self.train_batch < self.minibatch:
            raise ValueError(f"minibatch ({self.minibatch}) must not exceed train_batch ({self.train_batch})")
        if self.train_batch % self.envs:
            raise ValueError(f"envs ({self.envs}) must divide train_batch ({self.train_batch})")


class RLMetaSettings(ActorSettings):
    """``drml rl meta-train``: Reptile over PPO weights, and the baselines trained on the same task stream."""

    methods: Distinct[Literal["meta", "multitask", "rl2"]] = ["meta", "multitask"]
    """What to train: ``meta`` (Reptile), ``multitask`` (one PPO policy over randomised tasks), ``rl2``
    (an LSTM policy over randomised tasks that sees its previous action and reward)."""
    meta_steps: Count = 60
    """Reptile outer updates."""
    meta_batch: Count = 4
    """Tasks per outer update, adapted in parallel over ``workers``."""
    inner_iters: Count = 1
    """PPO iterations on each task before the outer update."""
    meta_lr: Rate = 1.0
    """Outer step size epsilon: theta += epsilon * mean(phi - theta) (1.0: move to the mean adapted weights)."""
    meta_lr_decay: bool = True
    """Decay the outer step size linearly to 0 over ``meta_steps`` (the Reptile paper's schedule)."""
    meta_log_std: bool = False
    """Meta-learn the exploration noise (``pi.log_std``, with ``ppo.free_log_std``). Off: Reptile keeps it
    at its initial value (std 1): a first-order method has no gradient that rewards exploring *before*
    adaptation, and averaging adapted policies only shrinks it, which slows PPO's adaptation."""
    baseline_iters: Count | None = None
    """PPO iterations of ``multitask`` and ``rl2``; default: ``meta_steps x meta_batch x inner_iters`` (the
    same environment steps as Reptile)."""
    eval_every: Count = 10
    """Meta-steps between checkpoints (and a held-out adaptation check)."""


class RLEvalSettings(Section):
    """``drml rl meta-eval``: adaptation on held-out tasks, every method with the same PPO budget."""

    methods: Distinct[RLMethod] = ["meta", "multitask", "scratch", "oracle"]
    tasks: Count = 5
    """Held-out tasks (drawn from the family with a seed stream meta-training never uses)."""
    seeds: Distinct[Seed] = [1, 2, 3, 4, 5]
    """Seeds of PPO sampling (and of the random init of ``scratch``)."""
    adapt_iters: Count = 3
    """PPO iterations of adaptation; returns are measured before and after each."""
    episodes: Count = 20
    """Episodes sampled to measure each return."""
    oracle_iters: Count = 40
    """PPO iterations of the per-task oracle (from scratch, on that task alone)."""
    oracle_seeds: Count = 1
    """The oracle is trained with the first N of ``seeds`` (it is the expensive one)."""
    reset_log_std: bool = False
    """Start every trained policy (meta, multitask, rl2) with a free exploration std reset to 1, as
    Reptile's is when ``meta.meta_log_std`` is off: compares what the networks learned, not their noise."""
    workers: Count = 2


class SpaceMapping(Section):
    """How a target env's spaces map onto the source policy's when they differ."""

    observation: list[int | None]
    """For each target observation dimension, the source dimension it feeds (``null``: a new input, zero weights)."""
    action: list[int | None]
    """For each target action output of the policy head, the source output it starts from (``null``: fresh)."""


class TransferSettings(Section):
    """``drml rl transfer``: train on a source task, fine-tune on a target, against the target from scratch."""

    source: dict[str, float]
    """Source task parameters (``env.family``'s keys, e.g. ``{length: 0.5}``); unset keys keep the env default."""
    target: dict[str, float]
    """Target task parameters."""
    source_family: RLFamily | None = None
    """Family of the source env; default ``env.family``."""
    target_family: RLFamily | None = None
    """Family of the target env; default ``env.family``. Spaces that differ need ``mapping``."""
    mapping: SpaceMapping | None = None
    source_iters: Count = 30
    """PPO iterations on the source task."""
    target_iters: Count = 30
    """PPO iterations on the target task (both curves)."""
    seeds: Distinct[Seed] = [1, 2, 3, 4, 5]
    episodes: Count = 10
    """Episodes sampled to measure each point of the target curves."""
    threshold: float | None = None
    """Return that counts as learned for time-to-threshold; default: 90% of the way from the lowest to the
    highest mean return seen on the target."""
    tail: Count = 3
    """Points averaged for the asymptotic performance."""


class RLExperiment(Experiment):
    """One reinforcement-learning experiment: what ``drml rl meta-train|meta-eval|transfer`` run."""

    seed: Seed = 0
    env: RLEnvSettings = RLEnvSettings()
    ppo: PPOSettings = PPOSettings()
    meta: RLMetaSettings = RLMetaSettings()
    eval: RLEvalSettings = RLEvalSettings()
    transfer: TransferSettings | None = None
    """The cross-domain transfer experiment (``drml rl transfer``)."""

    @model_validator(mode="after")
    def _transfer_fits_the_envs(self) -> Self:
        """The transfer's tasks, spaces and mapping against its envs (:func:`drml_ray.rl.spaces.check_spaces`): an
        error here, not once the source policy has trained."""
        from drml_ray.rl.spaces import check_spaces  # (gymnasium: not imported by every drml command)

        check_spaces(self)
        return self
