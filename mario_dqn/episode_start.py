"""How an episode begins: resumable episodes, restarts from the furthest episodes, no-op starts.

The observation pipeline (:mod:`mario_dqn.wrappers`) turns screens into observations;
this module decides *where* an episode starts and keeps what is needed to rebuild it:

- :class:`ResumableEpisode` records the reset seed and every action, the whole state
  of a deterministic episode, so a checkpoint can rebuild the running episode exactly;
- :class:`EpisodeStateLayer` is the base of the wrappers above it whose own state
  (their generators, what they keep) is part of that episode state;
- :class:`RestartFromBest` starts some training episodes along the env's furthest ones;
- the no-op start protocol (:func:`noop_count`): an episode begins with
  ``randint(0, noop_max)`` :data:`NOOP_ACTION` steps. Evaluation draws the count from
  the episode's seed (:func:`evaluation_noops`) and plays the no-ops as steps of the
  episode; training's :class:`NoopStart` draws it from its own stream and hides them.
  One draw, one action, one bound for both, so training meets the start states that
  evaluation judges it on.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

NOOP_ACTION = 0
"""Index of ['NOOP'] in every nes-py action set (RIGHT_ONLY, SIMPLE_MOVEMENT, COMPLEX_MOVEMENT)."""

EVAL_NOOP_MAX = 30
"""Evaluation episode ``i`` starts with ``randint(0, EVAL_NOOP_MAX)`` no-op steps drawn from
its seed (Mnih et al. 2015's no-op starts). The emulator is deterministic, so without
them every greedy episode of a stage would be the same episode and a "flag rate over 20
seeds" would be one coin flip counted 20 times; with them each seed meets the enemies
and the clock in a different phase."""


def noop_count(rng: np.random.Generator, noop_max: int) -> int:
    """How many :data:`NOOP_ACTION` steps an episode starts with: ``randint(0, noop_max)``,
    one draw from ``rng`` (the one draw evaluation and training both make)."""
    return int(rng.integers(noop_max + 1))


def evaluation_noops(episode_seed: int, noop_max: int = EVAL_NOOP_MAX) -> int:
    """The no-op start of the evaluation episode reset with ``episode_seed``: drawn from a
    generator of that seed alone, so an episode's start depends on its seed only."""
    return noop_count(np.random.default_rng(episode_seed), noop_max)


class ResumableEpisode(gym.Wrapper):
    """Remember how the running episode began and every action since, so it can be rebuilt.

    Why: nes-py's emulator snapshots are opaque in-memory objects that cannot be written
    to disk, but the emulator and every wrapper below this one are deterministic. So
    "the RNG state before the reset + the actions since" *is* the full state of the
    episode (emulator, frame-skip buffers, frame stack, no-progress and time-limit
    counters). A checkpoint stores that; resuming replays it and continues the very
    episode that was running. Replay costs at most one episode of emulation.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._seed: int | None = None
        self._rng_state: dict[str, Any] | None = None
        self._actions: list[int] = []
        self.pending_state: dict[str, Any] | None = None  # set through VectorEnv.set_attr

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._seed = seed
        self._rng_state = None if seed is not None else self.env.unwrapped.np_random.bit_generator.state
        self._actions = []
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        self._actions.append(int(action))
        return self.env.step(action)

    def get_episode_state(self) -> dict[str, Any]:
        """A JSON-ready description of the running episode."""
        return {"seed": self._seed, "rng_state": self._rng_state, "actions": list(self._actions)}

    def set_episode_state(self, state: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """Rebuild the episode described by ``state``; return its current observation and info."""
        if state["seed"] is None:
            if state["rng_state"] is None:
                raise ValueError("episode state has neither a seed nor an RNG state")
            self.env.unwrapped.np_random.bit_generator.state = state["rng_state"]
        obs, info = self.reset(seed=state["seed"])
        for action in state["actions"]:
            obs, _, terminated, truncated, info = self.step(action)
            if terminated or truncated:
                raise ValueError("episode state does not replay: the episode ended early")
        return obs, info

    def restore_pending(self) -> tuple[np.ndarray, dict[str, Any]]:
        """:meth:`set_episode_state` with ``pending_state``: vector envs can set a
        different value per env with ``set_attr`` but call methods with the same arguments."""
        if self.pending_state is None:
            raise ValueError("no pending episode state to restore")
        state, self.pending_state = self.pending_state, None
        return self.set_episode_state(state)


class EpisodeStateLayer(gym.Wrapper):
    """A wrapper above :class:`ResumableEpisode` whose own state is part of the episode state.

    The wrappers below rebuild the emulator by replaying the episode; a layer adds what
    only it holds (its generator, what it has kept) under its ``STATE_KEY``, and takes it
    back after the replay. A state saved before the layer existed has no such key and
    leaves the layer as built. Subclasses give :meth:`_own_state` and :meth:`_load_own`.
    """

    STATE_KEY = ""

    def _own_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_own(self, own: dict[str, Any]) -> None:
        raise NotImplementedError

    def get_episode_state(self) -> dict[str, Any]:
        """The episode state of the wrappers below, plus this wrapper's own."""
        return {**self.env.get_wrapper_attr("get_episode_state")(), self.STATE_KEY: self._own_state()}

    def set_episode_state(self, state: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """Rebuild the episode (the wrappers below replay it) and this wrapper's state."""
        result = self.env.get_wrapper_attr("set_episode_state")(state)
        self._load(state)
        return result

    def restore_pending(self) -> tuple[np.ndarray, dict[str, Any]]:
        """:meth:`set_episode_state` with the pending state ``set_attr`` left below."""
        state = self.env.get_wrapper_attr("pending_state")
        result = self.env.get_wrapper_attr("restore_pending")()
        self._load(state)
        return result

    def _load(self, state: dict[str, Any]) -> None:
        own = state.get(self.STATE_KEY)
        if own is not None:
            self._load_own(own)


RESTART_STREAM = 0x5EED_BE57
"""Mixed into the reset seed for :class:`RestartFromBest`'s own generator, so its draws
never share a stream with stage sampling."""

EXPLORE_HOLD = 6
"""Longest run of one random action in a restarted episode's exploration steps: a high
jump needs A held over several agent steps (the 1-3 probe that found the higher route
held each random action 1-6 steps)."""

FRONTIER_BINS = 10
"""With ``frontier``: a kept episode's steps are cut into this many equal parts, and a
restart first draws the part it starts in (:func:`frontier_weights`)."""

FRONTIER_FLOOR = 0.05
"""Every part's weight is at least this, so parts already mastered or still out of reach
are still drawn now and then and their estimates follow the agent."""

FRONTIER_RATE = 0.1
"""Each restarted episode moves its part's success estimate this far toward its outcome
(an average over about the last 1 / FRONTIER_RATE restarts there)."""


def frontier_weights(success: list[float], floor: float = FRONTIER_FLOOR) -> np.ndarray:
    """The probability of drawing each part of a kept episode, given the estimated chance
    that a restart there succeeds: ``floor + p (1 - p)``, normalised.

    Why ``p (1 - p)``: the reverse curriculum of Florensa et al. (2017) trains from the
    start states whose success is neither sure nor hopeless, and Salimans and Chen (2018)
    learned Montezuma's Revenge from one demonstration by starting from its end and
    moving the start back as the agent learned to succeed there. A restart far behind the
    frontier (p near 0) must clear several hard places before the one it could learn, one
    near the goal (p near 1) teaches nothing new; ``p (1 - p)`` is largest between them.
    """
    p = np.asarray(success, dtype=np.float64)
    weights = floor + p * (1.0 - p)
    return weights / weights.sum()


def start_in_part(rng: np.random.Generator, length: int, part: int, parts: int = FRONTIER_BINS) -> int:
    """A uniformly drawn restart step in ``part`` of ``parts`` equal parts of [1, ``length``]
    (the last part includes ``length`` itself, as the uniform draw does). Never step 0 when
    there is a step to replay: a restart there would be an episode from the stage start
    in every record (``restart_steps`` 0) while its first steps follow the guide."""
    low = max(length * part // parts, min(length, 1))
    high = length * (part + 1) // parts + (1 if part == parts - 1 else 0)
    return int(rng.integers(low, max(high, low + 1)))


class RestartFromBest(EpisodeStateLayer):
    """Start some training episodes from a state along one of this env's best episodes.

    Why: in a stage like 1-3 the way on leaves the greedy path several jumps before the
    spot where the agent dies, and epsilon-greedy exploration around that path almost
    never finds it; when an episode does get further, the agent sees the states past
    the spot once and then not again. Go-Explore (Ecoffet et al. 2021) returns to such
    frontier states and explores from there. Here the return is a replay: the emulator
    and every wrapper below are deterministic, so the actions an episode took from the
    stage start rebuild any of its states exactly. The wrapper keeps, per stage, the
    ``keep`` episodes that got furthest (their actions up to their furthest x_pos);
    each reset then, with probability ``probability``, replays one of them, chosen
    uniformly, up to a uniformly drawn step, and the episode starts there. The agent
    never sees the replayed steps; the episode's return and length count from there.

    With ``guided`` > 0 the episode's first ``guided`` steps (at most to where the kept
    episode got furthest) then also follow the kept episode, whatever action the agent
    asked for: they are ordinary steps of the episode, and ``info["guided_action"]`` says
    which action was taken (-1 when it was the agent's own), so the learner stores the
    transitions with the actions that made them. Why: a route that leaves the greedy
    path earlier is only worth taking once the agent has transitions of *taking* it from
    where it parts; restarts past that point teach what follows, but the agent, acting
    itself before it, keeps to its own route (Jump-Start RL, Uchendu et al. 2023, hands
    over from a guide policy the same way; DQN learns off-policy from those steps).

    With ``explore`` > 0 the next ``explore`` steps after those take random actions, each
    held for 1 to ``EXPLORE_HOLD`` steps (reported and stored the same way). Why: the
    kept episodes only lead where the agent has already been; when they all end at the
    same barrier, a way round it must first be found once. Go-Explore explores from the
    returned state with random, repeated actions; on 1-3 held random actions from the
    greedy path found the higher route where epsilon-greedy steps around it did not
    (run notes of w13-s0).

    With ``frontier`` the restart step is not drawn uniformly: the kept episode's steps
    are cut into :data:`FRONTIER_BINS` parts, and per stage each part (the same part of
    whichever kept episode: they mostly share a route) has a running estimate of how often
    a restart there succeeds (reaches the flag, or gets further than the kept episode did);
    the part is drawn by :func:`frontier_weights`, most often where success is about even.
    Why: on 4-3 restarts after 250 replayed steps reached the flag every time and those
    in the first 100 never, and the uniform draw spent more than a third of its restarts
    there (w43-any-s0 at 250k-400k, ``python -m mario_dqn.failures RUN --restarts 50``);
    the agent learns a stage backwards from the flag, and its frontier is the part worth
    practising.

    Sits above :class:`ResumableEpisode`, which records the replayed actions too, so a
    checkpoint's episode state rebuilds the emulator; the episode state adds
    this wrapper's own (the kept episodes, its generator, the running episode's
    actions, the frontier's estimates) so a resumed run restarts from the same states as
    one never stopped.
    Training only: evaluations are built without it and start at the stage start.
    """

    def __init__(self, env: gym.Env, probability: float, keep: int, guided: int = 0, explore: int = 0,
                 frontier: bool = False) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"restart probability must be in [0, 1], got {probability!r}")
        if not isinstance(keep, (int, np.integer)) or keep < 1:
            raise ValueError(f"restart keep must be an integer >= 1, got {keep!r}")
        if not isinstance(guided, (int, np.integer)) or guided < 0:
            raise ValueError(f"restart guided steps must be an integer >= 0, got {guided!r}")
        if not isinstance(explore, (int, np.integer)) or explore < 0:
            raise ValueError(f"restart explore steps must be an integer >= 0, got {explore!r}")
        super().__init__(env)
        self.probability = float(probability)
        self.keep = int(keep)
        self.guided = int(guided)
        self.explore = int(explore)
        self._guide: list[int] = []  # the kept episode's next actions, taken instead of the agent's
        self._explore_left = 0  # random steps still to take after the guide
        self._held, self._hold_left = 0, 0  # the random action held and for how many more steps
        self.rng = np.random.default_rng(RESTART_STREAM)
        self.best: dict[str, list[tuple[int, list[int]]]] = {}  # stage -> [(furthest x_pos, actions to it)]
        self._stage = ""
        self._actions: list[int] = []
        self._best_x = 0
        self._best_len = 0
        self.restarted_at = 0  # replayed steps of the running episode (0: it began at the stage start)
        self.frontier = bool(frontier)
        self.success: dict[str, list[float]] = {}  # stage -> per part, the estimated chance a restart succeeds
        self._part = -1  # the part the running episode restarted in (-1: not a frontier restart)
        self._target_x = 0  # how far the kept episode it restarted along got

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.rng = np.random.default_rng([seed, RESTART_STREAM])
        obs, info = self.env.reset(seed=seed, options=options)
        self._stage = f"{info.get('world')}-{info.get('stage')}"
        self._actions, self._best_x, self._best_len = [], int(info.get("x_pos", 0)), 0
        self.restarted_at, self._guide, self._explore_left, self._hold_left = 0, [], 0, 0
        self._part = -1
        kept = self.best.get(self._stage, [])
        if kept and self.rng.random() < self.probability:
            target_x, actions = kept[int(self.rng.integers(len(kept)))]
            if self.frontier:
                success = self.success.setdefault(self._stage, [0.5] * FRONTIER_BINS)
                self._part = int(self.rng.choice(FRONTIER_BINS, p=frontier_weights(success)))
                self._target_x = target_x
                start = start_in_part(self.rng, len(actions), self._part)
            else:
                start = int(self.rng.integers(len(actions) + 1))
            for action in actions[:start]:
                obs, _, terminated, truncated, info = self._take(action)
                if terminated or truncated:  # cannot happen with the same config: the kept episode went on
                    raise RuntimeError("a kept episode ended while it was replayed")
            self.restarted_at = start
            self._guide = list(actions[start:start + self.guided])  # never its last step: none of them ends it
            self._explore_left = self.explore
        return obs, {**info, "restart_steps": self.restarted_at, "guided_action": -1}

    def step(self, action):
        guided = self._guide.pop(0) if self._guide else self._explore_action()
        obs, reward, terminated, truncated, info = self._take(int(action) if guided < 0 else guided)
        if terminated or truncated:
            self._score(bool(info.get("flag_get", False)))
            self._remember()
        return obs, reward, terminated, truncated, {**info, "restart_steps": self.restarted_at,
                                                    "guided_action": guided}

    def _explore_action(self) -> int:
        """The next random exploration action after the guide, or -1 when the agent acts."""
        if self._explore_left <= 0:
            return -1
        if self._hold_left <= 0:
            self._held = int(self.rng.integers(self.action_space.n))
            self._hold_left = int(self.rng.integers(1, EXPLORE_HOLD + 1))
        self._explore_left -= 1
        self._hold_left -= 1
        return self._held

    def _take(self, action: int):
        result = self.env.step(action)
        self._actions.append(action)
        x_pos = int(result[4].get("x_pos", 0))
        if x_pos > self._best_x:
            self._best_x, self._best_len = x_pos, len(self._actions)
        return result

    def _score(self, flag: bool) -> None:
        """Move the estimate of the part the finished episode restarted in toward its outcome:
        success is the flag, or getting further than the kept episode it began along. Only
        further: a restart in the kept episode's last guided steps is led to where it got, and
        counting that would mark the parts where Go-Explore explores past the frontier as
        mastered before any flag is found."""
        if self._part < 0:
            return
        success = self.success[self._stage]
        won = 1.0 if flag or self._best_x > self._target_x else 0.0
        success[self._part] += FRONTIER_RATE * (won - success[self._part])
        self._part = -1

    def _remember(self) -> None:
        """Keep the finished episode if it is among the stage's ``keep`` furthest."""
        # the episode ended after its last action, so any shorter prefix replays without ending
        length = min(self._best_len, len(self._actions) - 1)
        if length <= 0:
            return
        kept = self.best.setdefault(self._stage, [])
        if len(kept) == self.keep and self._best_x <= kept[-1][0]:
            return
        kept.append((self._best_x, self._actions[:length]))
        kept.sort(key=lambda entry: -entry[0])  # stable: of equals, the older stays first
        del kept[self.keep:]

    # --------------------------------------------------------------- checkpoints

    STATE_KEY = "restarts"

    def _own_state(self) -> dict[str, Any]:
        return {"best": {stage: [[x, list(actions)] for x, actions in kept] for stage, kept in self.best.items()},
                "rng_state": self.rng.bit_generator.state, "stage": self._stage, "actions": list(self._actions),
                "best_x": self._best_x, "best_len": self._best_len, "restarted_at": self.restarted_at,
                "guide": list(self._guide), "explore_left": self._explore_left, "held": self._held,
                "hold_left": self._hold_left, "success": {stage: list(p) for stage, p in self.success.items()},
                "part": self._part, "target_x": self._target_x}

    def _load_own(self, own: dict[str, Any]) -> None:
        self.best = {stage: [(int(x), [int(a) for a in actions]) for x, actions in kept]
                     for stage, kept in own["best"].items()}
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = own["rng_state"]
        self._stage, self._actions = own["stage"], [int(a) for a in own["actions"]]
        self._best_x, self._best_len = int(own["best_x"]), int(own["best_len"])
        self.restarted_at = int(own["restarted_at"])
        self._guide = [int(a) for a in own.get("guide", [])]
        self._explore_left = int(own.get("explore_left", 0))
        self._held, self._hold_left = int(own.get("held", 0)), int(own.get("hold_left", 0))
        # estimates of another number of parts (a changed FRONTIER_BINS) start again at 0.5
        self.success = {stage: [float(v) for v in p] for stage, p in own.get("success", {}).items()
                        if len(p) == FRONTIER_BINS}
        self._part, self._target_x = int(own.get("part", -1)), int(own.get("target_x", 0))


NOOP_STREAM = 0x5EED_0000
"""Mixed into the reset seed for :class:`NoopStart`'s own generator."""


class NoopStart(EpisodeStateLayer):
    """Begin each training episode from the stage start with ``randint(0, noop_max)`` hidden no-op steps.

    Why: evaluation starts every episode with 0-30 forced no-ops (:data:`EVAL_NOOP_MAX`,
    Mnih et al. 2015) so that each seed meets the enemies in a different phase; training
    episodes without them all meet the first enemy in the same phase, and the greedy policy
    learns one timing. On 1-2 it ran into the first goomba after 18 or more no-ops and
    cleared the level after fewer (run notes of w12j-s0). Drawing the same no-ops in
    training trains on the start states evaluation uses (baselines' NoopResetEnv does the
    same for Atari).

    The no-ops are ordinary steps of the wrappers below (:data:`NOOP_ACTION`, counted by
    :func:`noop_count` as evaluation's are), so :class:`ResumableEpisode` and
    :class:`RestartFromBest` record them and a replay rebuilds the state; the agent never
    sees them. An episode that begins along
    a kept one (``info['restart_steps'] > 0``) gets none: it already starts where that one
    was. This wrapper's generator is part of the episode state, for exact resume.
    """

    def __init__(self, env: gym.Env, noop_max: int) -> None:
        if not isinstance(noop_max, (int, np.integer)) or noop_max < 1:
            raise ValueError(f"noop_max must be an integer >= 1, got {noop_max!r}")
        super().__init__(env)
        self.noop_max = int(noop_max)
        self.rng = np.random.default_rng(NOOP_STREAM)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.rng = np.random.default_rng([seed, NOOP_STREAM])
        obs, info = self.env.reset(seed=seed, options=options)
        if info.get("restart_steps", 0) > 0:
            return obs, info
        for _ in range(noop_count(self.rng, self.noop_max)):
            obs, _, terminated, truncated, info = self.env.step(NOOP_ACTION)
            if terminated or truncated:  # an enemy walked in: start over, without no-ops
                return self.env.reset(options=options)
        return obs, info

    # --------------------------------------------------------------- checkpoints

    STATE_KEY = "noop_start"

    def _own_state(self) -> dict[str, Any]:
        return {"rng_state": self.rng.bit_generator.state}

    def _load_own(self, own: dict[str, Any]) -> None:
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = own["rng_state"]
