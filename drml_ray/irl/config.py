"""The inverse-RL experiment file (``drml rl expert`` and ``drml rl irl``): ``expert:`` and ``irl:`` sections
on top of an RL experiment's ``env:`` and ``ppo:``."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from drml_ray.config import Count, Distinct, LocalPath, NonEmpty, NonNegative, NonNegativeFloat, Rate, Section, Seed
from drml_ray.rl.config import PPOSettings, RLExperiment, RLFamily

IRLMethod = Literal["bc", "gail", "airl"]
MetaIRLMethod = Literal["meta", "multitask", "scratch", "airl"]


class DiscriminatorSettings(Section):
    """The discriminator (GAIL) or reward network (AIRL), trained inside the PPO Learner."""

    hidden: NonEmpty[Count] = [64, 64]
    lr: Rate = 1e-3
    """Adam learning rate."""
    updates: Count = 32
    """Discriminator steps per PPO iteration (each on fresh minibatches of both sides)."""
    batch: Count = 256
    """Rows drawn from the demonstrations, and as many from the policy's batch, per step."""
    grad_penalty: NonNegativeFloat = 0.0
    """Weight of the squared gradient of the discriminator's logit with respect to its inputs (0: none)."""
    coverage: NonNegative = 0
    """States (with random actions) drawn uniformly from the box around the demonstrations' and the batch's
    states, added to the policy's side of every update (0: none): the discriminator then has negatives beyond
    the states it saw instead of extrapolating there (as meta-IRL's inner loop, :mod:`drml_ray.irl.meta`)."""
    coverage_margin: NonNegativeFloat = 0.5
    """How far that box reaches beyond the states seen, as a fraction of their extent, on each side."""
    policy_logp: bool = True
    """AIRL: the discriminator's logit is ``f - log pi(a|s)`` (AIRL's ``D = exp f / (exp f + pi(a|s))``); false:
    ``f`` alone. With the log pi term, a policy whose noise has shrunk finds a stochastic expert's actions unlikely,
    and the two sides come apart through log pi with no help from ``f``, which then stops learning."""
    history: NonNegative = 0
    """Policy rows kept from every iteration so far (a uniform sample, reservoir sampling), drawn as negatives
    beside the current batch's in every update (0: the current batch only). The discriminator then keeps telling
    the expert from every policy of the run, the early near-random ones included, and its reward still grades
    the states a fresh policy starts from (what a reward carried to new dynamics has to do)."""


class FamilySettings(Section):
    """One task family of the comparison: the expert's task, and each learner's budget on it."""

    task: dict[str, float] = {}
    """The expert's task (the family's keys, e.g. ``{goal_x: 0.3, goal_y: -0.2}``); unset keys keep the env's
    defaults (Nav2D: goal at the origin, so set one)."""
    horizon: Count | None = None
    """Episode length; default: the family's (Nav2D 100, CartPole 500, Pendulum 200)."""
    ppo: PPOSettings | None = None
    """PPO settings of the expert and of the GAIL/AIRL policy learners on this family; default: ``ppo:``."""
    expert_iters: Count = 50
    """PPO iterations of the expert (on the true reward)."""
    iters: Count = 50
    """PPO iterations of each GAIL and AIRL learner (on the learned reward)."""
    lr_final: NonNegativeFloat | None = None
    """PPO's learning rate at the last of those ``iters`` (and of a reward-transfer policy's), reached linearly
    from ``ppo.lr`` (RLlib's learning-rate schedule); none: ``ppo.lr`` throughout. A decaying rate keeps a policy
    that has matched the demonstrations from being pushed off them late by a discriminator that still moves."""
    transfer_task: dict[str, float] | None = None
    """Changed dynamics for reward transfer (e.g. ``{m: 1.5, l: 1.25}`` for Pendulum); none: no transfer."""
    transfer_iters: Count | None = None
    """PPO iterations of the fresh policy trained on AIRL's reward under ``transfer_task``, and of its yardstick (PPO
    on the true reward there, trained by ``drml rl expert``); default: ``iters``. Harder dynamics may need more than
    imitation did: a transferred reward is judged on a policy that has finished learning."""
    explore: bool | None = None
    """Record this family's demonstrations from the expert's stochastic policy; default: ``expert.explore``.
    (Nav2D starts every episode at the origin: a deterministic expert's demonstrations are one path, repeated.)"""
    disc: dict[Literal["gail", "airl"], DiscriminatorSettings] = {}
    """GAIL's or AIRL's discriminator settings on this family, whole, in place of ``irl.method_disc`` and
    ``irl.disc`` (e.g. ``{airl: {policy_logp: false}}`` where the demonstrations are stochastic)."""

    @model_validator(mode="after")
    def _transfer_iters_with_a_task(self) -> FamilySettings:
        if self.transfer_iters is not None and self.transfer_task is None:
            raise ValueError("transfer_iters is set without a transfer_task: there is no reward transfer to train")
        return self

    def transfer_iters_of(self) -> int:
        return self.transfer_iters or self.iters

    def horizon_of(self, family: str) -> int:
        from drml_ray.rl.envs import ENVS  # (gymnasium: not imported by every drml command)

        return self.horizon or (100 if family == "nav2d" else ENVS[family].HORIZON)  # type: ignore[attr-defined]


class ExpertSettings(Section):
    """``drml rl expert``: a PPO expert per family, and its recorded demonstrations."""

    episodes: Count = 16
    """Demonstrations recorded per family (RLlib's offline API, Parquet)."""
    explore: bool = False
    """Record the expert's stochastic policy (``false``: its most likely action at every step)."""
    seed: Seed = 0


class IRLSettings(Section):
    """``drml rl irl``: BC, GAIL and AIRL on every family, demonstration count and seed."""

    families: dict[RLFamily, FamilySettings] = {}
    """The families compared (default: ``env.family`` alone, with default settings)."""
    methods: Distinct[IRLMethod] = ["bc", "gail", "airl"]
    demos: Distinct[Count] = [1, 4, 16]
    """Demonstration counts (the first N the expert recorded)."""
    seeds: Distinct[Seed] = [1, 2, 3, 4, 5]
    disc: DiscriminatorSettings = DiscriminatorSettings()
    method_disc: dict[Literal["gail", "airl"], DiscriminatorSettings] = {}
    """One method's discriminator settings, in place of ``disc`` for it (whole: a field it leaves out takes its
    default, not ``disc``'s), e.g. ``{gail: {grad_penalty: 10}}``."""
    bc_iters: Count = 200
    """Training iterations of RLlib's BC (one minibatch of ``bc_batch`` steps each)."""
    bc_batch: Count = 256
    eval_episodes: Count = 10
    """Episodes (the policy's most likely actions) that measure a return on the true reward."""
    curve_points: Count = 10
    """Points of each learning curve (true return during training)."""
    workers: Count = 2
    """Ray actors, each running one GAIL or AIRL cell at a time (BC cells run on the driver)."""
    experts_dir: LocalPath | None = None
    """The run directory of a ``drml rl expert`` whose experts and demonstrations to imitate; default: this run's
    own ``--output-dir``. ``drml tune`` needs it (every trial imitates the same experts)."""

    @field_validator("families")
    @classmethod
    def _tasks_the_envs_take(cls, families: dict[str, FamilySettings]) -> dict[str, FamilySettings]:
        """Each ``task`` and ``transfer_task`` set on its family's env: a key it does not know, or a value its
        physics cannot take, is an error here, not in a Ray actor an hour into the run."""
        from drml_ray.rl.envs import make_env  # (gymnasium: not imported by every drml command)

        for family, settings in families.items():
            env = make_env(family)
            for name in ("task", "transfer_task"):
                try:
                    env.set_task(getattr(settings, name) or {})  # type: ignore[attr-defined]
                except (KeyError, ValueError) as err:
                    raise ValueError(f"{family}.{name}: {err.args[0]}") from None
        return families


class MetaIRLSettings(Section):
    """``drml rl meta-irl``: Reptile over AIRL's reward network across tasks of one family (Nav2D goals), judged
    by how well a held-out task's reward is recovered from a few of its demonstrations."""

    family: RLFamily = "nav2d"
    train_tasks: Count = 16
    """Tasks drawn for meta-training (each gets a PPO expert and ``train_demos`` demonstrations)."""
    test_tasks: Count = 4
    """Held-out tasks (each gets an expert, demonstrations and the evaluation's cells)."""
    horizon: Count = 20
    expert_iters: Count = 30
    """PPO iterations of each task's expert (on the true reward)."""
    explore: bool = True
    """Record the experts' stochastic policies (Nav2D starts every episode at the origin: a deterministic expert
    would repeat one path, and 4 demonstrations would be 1)."""
    train_demos: Count = 4
    """Demonstrations per training task."""
    demos: Distinct[Count] = [1, 4]
    """Demonstrations of a held-out task its reward is recovered from."""
    negatives: Count = 32
    """Episodes of uniformly random actions per task: the discriminator's other side (:mod:`drml_ray.irl.meta`)."""
    coverage: NonNegative = 2000
    """States drawn uniformly from the box around every state seen, added to the other side (0: none); without
    them the learned reward extrapolates past the demonstrations (:mod:`drml_ray.irl.meta`)."""
    coverage_margin: NonNegativeFloat = 0.5
    """How far the box reaches beyond the states seen, as a fraction of their extent, on each side."""
    meta_iters: Count = 300
    """Reptile's outer steps (and the pooled baseline's steps are ``meta_iters * inner_steps``)."""
    meta_batch: Count = 4
    """Training tasks per outer step."""
    inner_steps: Count = 10
    """Adam steps on one task inside an outer step."""
    optimizer: Literal["sgd", "adam"] = "sgd"
    """The inner loop's optimizer, in meta-training and in every method's adaptation (measured on Nav2D: with
    Adam's per-weight steps Reptile's initialisation adapted no faster than a fresh network)."""
    inner_lr: Rate = 0.5
    meta_lr: Rate = 0.5
    """Reptile's outer step size, decayed linearly to 0."""
    adapt_steps: Distinct[Count] = [10, 100]
    """Inner-loop steps on a held-out task's demonstrations after which its reward is judged (the table's
    columns, after the reward as it starts)."""
    methods: Distinct[MetaIRLMethod] = ["meta", "multitask", "scratch", "airl"]
    """``meta``: Reptile's initialisation, adapted; ``multitask``: a reward network pre-trained on every training
    task pooled, adapted; ``scratch``: a fresh network, adapted; ``airl``: adversarial AIRL from scratch (PPO in the
    loop, ``iters`` iterations) on the same demonstrations."""
    iters: Count = 30
    """PPO iterations of the fresh policy that judges each recovered reward (and of ``airl``'s learner)."""
    seeds: Distinct[Seed] = [1, 2, 3]
    workers: Count = 2

    @property
    def recorded_demos(self) -> int:
        """Episodes each task's expert records: enough for training and for the most a held-out task gives."""
        return max(self.train_demos, *self.demos)

    def check(self) -> None:
        if self.adapt_steps != sorted(set(self.adapt_steps)):
            raise ValueError(f"adapt_steps must increase, got {self.adapt_steps}")


class IRLExperiment(RLExperiment):
    """An inverse-RL experiment: experts, demonstrations, and the imitators compared on them."""

    expert: ExpertSettings = ExpertSettings()
    irl: IRLSettings = IRLSettings()
    meta_irl: MetaIRLSettings = MetaIRLSettings()

    def check(self) -> None:
        if max(self.irl.demos) > self.expert.episodes:
            raise ValueError(f"irl.demos asks for {max(self.irl.demos)} demonstrations but expert.episodes "
                             f"records {self.expert.episodes}")  # fmt: skip

    def families(self) -> dict[str, FamilySettings]:
        return dict(self.irl.families) or {self.env.family: FamilySettings()}

    def ppo_of(self, family: str) -> PPOSettings:
        return self.families()[family].ppo or self.ppo

    def explore_of(self, family: str) -> bool:
        """Whether ``family``'s demonstrations come from the expert's stochastic policy."""
        explore = self.families()[family].explore
        return self.expert.explore if explore is None else explore

    def disc_of(self, method: str, family: str | None = None) -> DiscriminatorSettings:
        """The discriminator settings of GAIL or AIRL (on ``family``, if it has its own)."""
        settings = self.families().get(family or "")
        own = settings.disc.get(method) if settings else None
        return own or self.irl.method_disc.get(method, self.irl.disc)  # type: ignore[call-overload]
