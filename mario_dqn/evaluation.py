"""The evaluation protocol: greedy (or epsilon-greedy) episodes on fixed seeds, and their result.

One protocol everywhere: ``evaluate`` and ``play`` on the command line, training's periodic
evaluations, distillation's episodes, the time-to-solve harness and the shipped agents'
``results.json``. Episode ``i`` resets with seed ``seed + i`` (which also picks its stage)
and begins with the no-op start that seed draws (:mod:`mario_dqn.episode_start`).

The result is typed (:class:`Evaluation`, :class:`Summary`, :class:`EpisodeRow`) and each
part also reads by the keys of the JSON it is written as (``evaluate --json``,
``results.json``), so ``result.flag_rate`` and ``result["flag_rate"]`` are the same figure
and :meth:`Evaluation.to_json` writes exactly the keys a reader of those files expects.

This module sits below the training loop: distillation, explain videos and play import
it without the loop.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

import config as C
from mario_dqn.environment import make_env
from mario_dqn.episode_start import EVAL_NOOP_MAX, NOOP_ACTION, evaluation_noops

__all__ = ["EVAL_NOOP_MAX", "EVAL_SEED_OFFSET", "NOOP_ACTION", "EpisodeRow", "Evaluation", "EvaluationStopped",
           "StepView", "Summary", "evaluate", "evaluate_each_stage", "evaluation_result", "summarize_episodes"]

EVAL_SEED_OFFSET = 1_000_003
"""Training's evaluation episodes use seeds ``seed + EVAL_SEED_OFFSET + i``: fixed, and apart from training's."""


class _JsonRecord(Mapping[str, Any]):
    """A typed record that also reads as the JSON object it is written as.

    ``KEYS`` maps each JSON key to its attribute, in the order the JSON lists them; a
    record equals another record or dict with the same keys and values (Mapping's
    equality), so code and tests that read the JSON read the record the same way.
    """

    KEYS: ClassVar[dict[str, str]] = {}

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, self.KEYS[key])
        except KeyError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_json()!r})"

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict of this record (plain dicts, lists and numbers)."""
        return {key: _plain(getattr(self, name)) for key, name in self.KEYS.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, _JsonRecord):
        return value.to_json()
    if isinstance(value, dict):
        return {key: _plain(part) for key, part in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(part) for part in value]
    return value


@dataclass(frozen=True, eq=False, repr=False)
class EpisodeRow(_JsonRecord):
    """One evaluation episode: its return (no-op starts included), length in agent steps,
    x_pos where it ended, whether it reached the flag, and its stage ('W-S').

    The x_pos is the last one, not the furthest. The two differ when Mario walks left (the
    simple and complex action sets) or the game moves him back: on a castle maze that loops
    a wrong route (4-4) it is the repeated ground the episode ended on, short of the check
    that sent it back (evaluation does not end an episode at a loop as training does)."""

    episode_return: float
    length: int
    x_pos: int
    flag: bool
    stage: str

    KEYS: ClassVar[dict[str, str]] = {"return": "episode_return", "length": "length", "x_pos": "x_pos",
                                      "flag": "flag", "stage": "stage"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EpisodeRow:
        return cls(float(data["return"]), int(data["length"]), int(data["x_pos"]), bool(data["flag"]),
                   str(data["stage"]))


@dataclass(frozen=True, eq=False, repr=False)
class Summary(_JsonRecord):
    """How many episodes, their mean return, mean x_pos and flag rate (pooled over
    several stages these hide a stage the agent cannot clear behind one it always
    clears, which is why an :class:`Evaluation` also gives them per stage)."""

    episodes: int
    mean_return: float
    mean_x_pos: float
    flag_rate: float

    KEYS: ClassVar[dict[str, str]] = {"episodes": "episodes", "mean_return": "mean_return",
                                      "mean_x_pos": "mean_x_pos", "flag_rate": "flag_rate"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Summary:
        return cls(int(data["episodes"]), float(data["mean_return"]), float(data["mean_x_pos"]),
                   float(data["flag_rate"]))


@dataclass(frozen=True, eq=False, repr=False)
class Evaluation(Summary):
    """What an evaluation returns: the pooled :class:`Summary`, the largest episode-end x_pos, the
    summary of each stage played (sorted by stage) and the episodes themselves."""

    max_x_pos: int = 0
    per_stage: dict[str, Summary] = field(default_factory=dict)
    per_episode: tuple[EpisodeRow, ...] = ()

    KEYS: ClassVar[dict[str, str]] = {**Summary.KEYS, "max_x_pos": "max_x_pos", "per_stage": "per_stage",
                                      "per_episode": "per_episode"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evaluation:
        """The evaluation an ``evaluate --json`` output or a ``results.json`` holds."""
        return cls(**{name: getattr(Summary.from_json(data), name) for name in Summary.KEYS.values()},
                   max_x_pos=int(data["max_x_pos"]),
                   per_stage={stage: Summary.from_json(part) for stage, part in data["per_stage"].items()},
                   per_episode=tuple(EpisodeRow.from_json(row) for row in data["per_episode"]))


class EvaluationStopped(Exception):
    """An evaluation given up half-way because ``stop()`` said so (a stop signal).
    ``episodes`` holds the rows of the episodes that did finish."""

    def __init__(self, episodes: list[EpisodeRow]) -> None:
        super().__init__(f"stopped after {len(episodes)} episodes")
        self.episodes = episodes


@dataclass(frozen=True)
class StepView:
    """One state of an evaluation episode as the agent met it: what ``evaluate`` hands
    ``on_step``, for showing what the agent sees and values (``play --record --explain``).

    Every state of an episode comes once: the one after reset, the one after each step,
    so an episode of ``n`` steps gives ``n + 1`` views, as many as ``on_frame`` frames.
    All but the last carry the decision taken in them; the last (the episode is over)
    has none. The arrays are the caller's to keep: nothing writes to them afterwards.
    """

    episode: int
    step: int
    """Agent steps taken in the episode before this state (0 for the state after reset)."""
    frame: np.ndarray | None
    """The full-resolution (240, 256, 3) uint8 RGB screen, the same array ``on_frame`` gets
    (None when :func:`evaluate` was asked for no frames)."""
    obs: np.ndarray
    """The network's input, the (H, W, stack) uint8 frame stack, oldest frame first."""
    q_values: np.ndarray | None
    """The policy network's (A,) Q-values of ``obs``, computed by the same compiled pass
    ``agent.act`` takes its greedy action from; None in the last state."""
    action: int | None
    """The action taken from this state; None in the last state."""
    explored: bool = False
    """``action`` is epsilon's random draw rather than the greedy one."""
    noop: bool = False
    """``action`` is one of the episode's forced no-op starts (see :data:`EVAL_NOOP_MAX`),
    not the agent's choice."""
    x_pos: int = 0
    """Mario's x position in the stage in this state (the env's ``info["x_pos"]``): how far
    the agent has got, the figure its evaluations are judged by."""
    episode_return: float = 0.0
    """The rewards received in the episode before this state; the last state's is the
    episode's return (as ``evaluate`` reports it)."""
    epsilon: float = 0.0
    """The exploration rate the episode is played with (0: greedy), so that a view says by
    itself how likely a random action was."""


def _will_explore(rng: np.random.Generator, epsilon: float) -> bool:
    """Whether ``agent.act(obs, epsilon, rng=rng)`` for one observation takes its random
    action: ``act`` first draws ``rng.random(1) < epsilon``; that draw is made here on a
    copy of the generator, so ``rng`` itself does not move."""
    return bool(copy.deepcopy(rng).random(1)[0] < epsilon)


def evaluate(agent: Any, config: C.Config, episodes: int, seed: int, epsilon: float = 0.0,
             on_frame: Callable[[int, np.ndarray], None] | None = None,
             noop_max: int = EVAL_NOOP_MAX, stop: Callable[[], bool] | None = None,
             on_step: Callable[[StepView], None] | None = None, frames: bool = True) -> Evaluation:
    """Play ``episodes`` episodes with seeds ``seed + i``; the same protocol everywhere.

    Episode ``i`` resets with seed ``seed + i`` (which also picks its stage) and begins
    with the no-op start of that seed (:func:`mario_dqn.episode_start.evaluation_noops`,
    ``randint(0, noop_max)`` steps); they count in the episode's return and length.
    Exploration (when ``epsilon > 0``) draws from its own generator seeded by ``seed``,
    so evaluating never disturbs the training RNG streams. ``on_frame(episode, rgb)``
    receives each full-resolution frame (for videos and the play window). ``on_step(view)``
    receives each state with the observation, Q-values, action, x_pos and return so far
    (a :class:`StepView`, before its step is taken); the extra forward pass it costs
    draws no random number, so the results are the same with or without it. The agent
    acts with its policy network (``agent.policy``: the weight average when it keeps
    one, else the online network). With ``frames=False`` the views carry no frame
    (``frame`` is None) and the emulator renders none, which costs time when only the
    observations are wanted (distillation). ``stop()``
    is asked before each step; when it is true the evaluation raises
    :class:`EvaluationStopped`.
    """
    rendering = on_frame is not None or (on_step is not None and frames)
    env = make_env(config.env, render_mode="rgb_array" if rendering else None)
    rng = np.random.default_rng(seed)
    rows: list[EpisodeRow] = []
    frame = None
    try:
        for i in range(episodes):
            obs, info = env.reset(seed=seed + i)
            if rendering:
                frame = env.render().copy()
            if on_frame:
                on_frame(i, frame)
            noops = evaluation_noops(seed + i, noop_max)
            total, length, done = 0.0, 0, False
            while not done:
                if stop is not None and stop():
                    raise EvaluationStopped(rows)
                q_values, explored = None, False
                if on_step:
                    q_values = agent.q_values(obs[None], policy=True)[0]
                if length < noops:
                    action = NOOP_ACTION
                else:
                    explored = on_step is not None and _will_explore(rng, epsilon)
                    action = int(agent.act(obs[None], epsilon, rng=rng, policy=True)[0])
                if on_step:
                    on_step(StepView(i, length, frame, obs, q_values, action, explored, noop=length < noops,
                                     x_pos=int(info["x_pos"]), episode_return=total, epsilon=epsilon))
                obs, reward, terminated, truncated, info = env.step(action)
                if rendering:
                    frame = env.render().copy()
                if on_frame:
                    on_frame(i, frame)
                total += float(reward)
                length += 1
                done = terminated or truncated
            if on_step:
                on_step(StepView(i, length, frame, obs, None, None, x_pos=int(info["x_pos"]), episode_return=total,
                                 epsilon=epsilon))
            rows.append(EpisodeRow(total, length, int(info["x_pos"]), bool(info["flag_get"]),
                                   f"{info['world']}-{info['stage']}"))
    finally:
        env.close()
    return evaluation_result(rows)


def evaluate_each_stage(agent: Any, config: C.Config, episodes: int, seed: int, epsilon: float = 0.0,
                        stop: Callable[[], bool] | None = None) -> Evaluation:
    """:func:`evaluate` on each of ``config``'s stages in turn, ``episodes`` episodes each
    with seeds ``seed + i``: what :func:`evaluate` returns, pooled over all of them.

    :func:`evaluate` over several stages lets each seed pick its stage, so a few
    episodes leave some stage one episode or none (and always the same seeds); this is
    the protocol the time-to-solve harness and ``evaluate --stage`` use, one stage at a time.
    """
    rows: list[EpisodeRow] = []
    for stage in config.env.stages:
        rows += evaluate(agent, C.replace(config, {"env": {"stages": (stage,)}}), episodes, seed, epsilon,
                         stop=stop).per_episode
    return evaluation_result(rows)


def evaluation_result(rows: list[EpisodeRow]) -> Evaluation:
    """What an evaluation returns from its episodes' rows: the pooled summary, the largest
    episode-end x_pos, the summary of each stage played (sorted) and the rows themselves."""
    pooled = summarize_episodes(rows)
    return Evaluation(pooled.episodes, pooled.mean_return, pooled.mean_x_pos, pooled.flag_rate,
                      max_x_pos=int(max(r.x_pos for r in rows)),
                      per_stage={stage: summarize_episodes([r for r in rows if r.stage == stage])
                                 for stage in sorted({r.stage for r in rows})},
                      per_episode=tuple(rows))


def summarize_episodes(rows: list[EpisodeRow]) -> Summary:
    """How many evaluation episodes, their mean return, mean x_pos and flag rate."""
    return Summary(len(rows), float(np.mean([r.episode_return for r in rows])),
                   float(np.mean([r.x_pos for r in rows])), float(np.mean([r.flag for r in rows])))
