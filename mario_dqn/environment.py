"""The one environment factory: Super Mario Bros seen through the mario-dqn wrapper stack.

``make_env`` builds, from the inside out:

    SuperMarioBrosEnv (one per stage; StageSelector when several)
      -> JoypadSpace        action reduction (RIGHT_ONLY / SIMPLE_MOVEMENT / COMPLEX_MOVEMENT)
      -> CeilingIsDeath     on an underground ceiling (1-2's way to the warp zone): a death
      -> LoopbackIsDeath    training envs only: the castle mazes' loop back for a wrong route
                            (4-4, 7-4, 8-4) is a death
      -> SkipMaxPool        k frames per action, rewards summed, native grayscale, max of last two
      -> ResizeObservation  84x84, cv2.INTER_AREA (Gymnasium's wrapper)
      -> FrameStackLast     (84, 84, 4) uint8, channels-last, oldest to newest
      -> TransformReward    reward * reward_scale
      -> NoProgressTruncation  truncated when x_pos stalls
      -> TimeLimit          truncated after max_episode_steps agent steps
      -> InfoFilter         x_pos, flag_get, world, stage, ...
      -> ResumableEpisode   reset seed/RNG + actions: the episode's state for checkpoints
      -> RestartFromBest    training envs with env.restart_from_best > 0 only: some episodes
                            start along the env's furthest episodes so far (a replay)
      -> NoopStart          training envs with env.noop_max > 0 only: 0-noop_max hidden
                            no-ops at the start, as evaluation's no-op starts
                            (the last three: mario_dqn.episode_start)

``terminated`` (death, flag) and ``truncated`` (time limit, no progress) stay separate.
``make_vector_env`` runs N of them in subprocesses (Gymnasium's AsyncVectorEnv with
shared memory) with same-step auto-reset: when an env's episode ends, the returned
observation is already the next episode's first one and the last one is in
``info["final_obs"]``.
"""

from __future__ import annotations

import functools
import multiprocessing
import operator
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gym_super_mario_bros import SuperMarioBrosEnv
from gym_super_mario_bros.actions import COMPLEX_MOVEMENT, RIGHT_ONLY, SIMPLE_MOVEMENT
from gymnasium.wrappers import ResizeObservation, TimeLimit, TransformReward
from nes_py.wrappers import JoypadSpace

from config import ACTION_SETS, ConfigError, EnvConfig, parse_stage
from mario_dqn import signals
from mario_dqn.episode_start import NoopStart, RestartFromBest, ResumableEpisode
from mario_dqn.wrappers import (CeilingIsDeath, FrameStackLast, InfoFilter, LoopbackIsDeath, NoProgressTruncation,
                                SkipMaxPool, StageSelector)

ACTIONS: dict[str, list[list[str]]] = {
    "right_only": RIGHT_ONLY,
    "simple": SIMPLE_MOVEMENT,
    "complex": COMPLEX_MOVEMENT,
}
"""Button lists of each action set, by the name used in ``EnvConfig.action_set``."""

RENDER_MODES: tuple[str | None, ...] = (None, "rgb_array")


def check_env_config(config: EnvConfig) -> list[tuple[int, int]]:
    """Validate the fields ``make_env`` depends on; return the stages as (world, stage).

    Raises ValueError naming the argument and its allowed values. Configs built through
    ``config.apply_overrides`` are already valid; this guards direct construction.
    """
    if config.action_set not in ACTION_SETS:
        raise ValueError(f"action_set must be one of {', '.join(ACTION_SETS)}; got {config.action_set!r}")
    for name, low in (("frame_skip", 1), ("stack_size", 1), ("frame_size", 16)):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    for name in ("no_progress_steps", "max_episode_steps"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0 (0 = off); got {value!r}")
    if not config.reward_scale > 0:
        raise ValueError(f"reward_scale must be > 0; got {config.reward_scale!r}")
    if not config.stages:
        raise ValueError("stages must name at least one stage like '1-1' (world 1-8, stage 1-4)")
    try:
        return [parse_stage(stage) for stage in config.stages]
    except ConfigError as err:
        raise ValueError(str(err)) from None


def _base_env(stages: list[tuple[int, int]], render_mode: str | None) -> gym.Env:
    envs = [SuperMarioBrosEnv(target=stage, render_mode=render_mode) for stage in stages]
    if len(envs) == 1:
        return envs[0]
    return StageSelector(envs, [f"{w}-{s}" for w, s in stages])


def make_env(config: EnvConfig, seed: int | None = None, render_mode: str | None = None, *,
             training: bool = False) -> gym.Env:
    """Build the wrapped Mario env for ``config``.

    ``training`` adds what only training episodes do (``config.end_on_loopback``: in
    evaluation a looped Mario plays on, as in the game; ``config.restart_from_best``,
    ``config.noop_max``: evaluation draws its own no-op starts);
    evaluation, play and videos build the env without it.

    ``seed`` seeds the first ``reset`` (stage sampling is the only randomness: the
    emulator is deterministic); later resets continue the same RNG stream.
    ``render_mode="rgb_array"`` makes ``env.render()`` return the full-resolution
    (240, 256, 3) RGB screen, for videos.
    """
    stages = check_env_config(config)
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}; got {render_mode!r}")
    env: gym.Env = _base_env(stages, render_mode)
    env = JoypadSpace(env, ACTIONS[config.action_set])
    if config.end_on_ceiling:
        env = CeilingIsDeath(env)
    if training and config.end_on_loopback:
        env = LoopbackIsDeath(env)
    env = SkipMaxPool(env, config.frame_skip)
    env = ResizeObservation(env, (config.frame_size, config.frame_size))
    env = FrameStackLast(env, config.stack_size)
    if config.reward_scale != 1.0:
        env = TransformReward(env, functools.partial(operator.mul, float(config.reward_scale)))
    if config.no_progress_steps > 0:
        env = NoProgressTruncation(env, config.no_progress_steps)
    if config.max_episode_steps > 0:
        env = TimeLimit(env, config.max_episode_steps)
    env = InfoFilter(env)
    env = ResumableEpisode(env)
    if training and config.restart_from_best > 0:
        env = RestartFromBest(env, config.restart_from_best, config.restart_keep, config.restart_guided,
                              config.restart_explore, config.restart_frontier)
    if training and config.noop_max > 0:
        env = NoopStart(env, config.noop_max)
    if seed is not None:
        env.reset(seed=seed)
    return env


def action_meanings(config: EnvConfig) -> list[str]:
    """Human-readable button combination of each action index, e.g. 'right A'."""
    check_env_config(config)
    return [" ".join(buttons) for buttons in ACTIONS[config.action_set]]


def find_wrapper(env: gym.Env, kind: type) -> Any:
    """The first wrapper of type ``kind`` in ``env``'s stack, or None."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, kind):
            return env
        env = env.env
    return env if isinstance(env, kind) else None


def env_factory(config: EnvConfig, render_mode: str | None = None, training: bool = False) -> Callable[[], gym.Env]:
    """A picklable zero-argument constructor, as vector envs want."""
    return functools.partial(make_env, config, None, render_mode, training=training)


def _make_worker_env(config: EnvConfig, render_mode: str | None) -> gym.Env:
    """A training ``make_env`` in an env worker process, which leaves stop signals to the
    main one (see :mod:`mario_dqn.signals`).

    ``AsyncVectorEnv`` also calls the first of these once in the calling process, to read
    the spaces: there the stop handlers stay, or a stop signal sent while the envs start
    would be dropped (a spawned worker is the process with a multiprocessing parent)."""
    if multiprocessing.parent_process() is not None:
        signals.ignore_in_worker()
    return make_env(config, None, render_mode, training=True)


def make_vector_env(config: EnvConfig, num_envs: int, asynchronous: bool | None = None) -> gym.vector.VectorEnv:
    """``num_envs`` training copies of ``make_env(config)`` stepped together, same-step auto-reset.

    ``asynchronous`` defaults to True when ``num_envs > 1``: each env gets its own
    process, so emulation runs on all cores; observations come back through shared
    memory. Seed with ``venv.reset(seed=s)``: env i gets seed ``s + i``. The worker
    processes ignore SIGINT, SIGTERM and SIGHUP: the main process owns shutdown.
    """
    if not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1; got {num_envs!r}")
    check_env_config(config)
    if asynchronous is None:
        asynchronous = num_envs > 1
    mode = gym.vector.AutoresetMode.SAME_STEP
    if asynchronous:
        fns = [functools.partial(_make_worker_env, config, None) for _ in range(num_envs)]
        with signals.blocked_while_spawning():
            return gym.vector.AsyncVectorEnv(fns, shared_memory=True, autoreset_mode=mode, context="spawn")
    return gym.vector.SyncVectorEnv([env_factory(config, training=True) for _ in range(num_envs)],
                                    autoreset_mode=mode)


def final_observations(obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                       info: dict[str, Any]) -> np.ndarray:
    """The true next observations of a same-step auto-reset vector step.

    Where an episode ended, the vector env already returned the next episode's first
    observation; the last one of the ended episode is in ``info['final_obs']``.
    """
    done = np.logical_or(terminated, truncated)
    if not done.any():
        return obs
    next_obs = obs.copy()
    for i in np.flatnonzero(done):
        next_obs[i] = info["final_obs"][i]
    return next_obs


def taken_actions(actions: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """The actions a vector step actually took: ``actions``, except where an env took its
    own instead (``env.restart_guided`` / ``restart_explore``; ``info['guided_action']`` >= 0).

    An env whose episode ended in this step has already reset (its entry is the reset's,
    -1); the step's own entry is in ``info['final_info']``.
    """
    guided = info.get("guided_action")
    if guided is None:
        return actions
    guided = np.asarray(guided)
    final = info.get("final_info", {})
    if "guided_action" in final:
        ended = np.asarray(final["_guided_action"], dtype=bool)
        guided = np.where(ended, final["guided_action"], guided)
    return np.where(guided >= 0, guided, actions).astype(actions.dtype)
