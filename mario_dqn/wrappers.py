"""Small, single-purpose Gymnasium wrappers for the Mario observation pipeline.

What an observation is made of (frame skip and max-pool, frame stack, the info kept,
the episode ends the pipeline adds); where an episode starts (restarts, no-op starts)
and how a running episode is rebuilt is :mod:`mario_dqn.episode_start`'s. Each wrapper
does one thing and checks its arguments (Gymnasium's ``atari_preprocessing.py`` is the
model). Resizing and reward scaling use
Gymnasium's own wrappers (``ResizeObservation``, ``TransformReward``,
``TimeLimit``); only what Gymnasium lacks is written here.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

INFO_KEYS: tuple[str, ...] = (
    "x_pos", "y_pos", "flag_get", "world", "stage", "score", "coins", "time", "life", "status", "looped",
)
"""The ``info`` entries kept per step: what training, evaluation and logging use.
The base env returns ~40 entries; vector envs merge every key on every step, so
fewer keys means less per-step Python work."""


class StageSelector(gym.Env):
    """One env over several stages: each ``reset`` picks a stage with the env's seeded RNG.

    Why separate emulators: a Super Mario Bros env is bound to its target stage when
    built (it skips the title screen and snapshots the start of that stage), so
    switching stages means switching emulators. They are small (< 1 MB each).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60}

    def __init__(self, envs: Sequence[gym.Env], names: Sequence[str]) -> None:
        if len(envs) < 1 or len(envs) != len(names):
            raise ValueError("StageSelector needs one name per env and at least one env")
        self.envs = list(envs)
        self.names = list(names)
        self.observation_space = envs[0].observation_space
        self.action_space = envs[0].action_space
        self.reward_range = envs[0].reward_range  # the game's per-frame reward clip, as each emulator's
        self.render_mode = envs[0].render_mode
        self.current = 0

    @property
    def active(self) -> gym.Env:
        """The emulator of the stage being played."""
        return self.envs[self.current]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.current = int(self.np_random.integers(len(self.envs)))
        return self.active.reset(options=options)

    def step(self, action):
        return self.active.step(action)

    def render(self):
        return self.active.render()

    @property
    def ram(self) -> np.ndarray:
        """The active emulator's RAM (as ``SuperMarioBrosEnv.ram``), for wrappers that read it."""
        return self.active.ram

    def observation(self, mode: str = "rgb_array", output: np.ndarray | None = None) -> np.ndarray:
        """The active emulator's screen in nes-py's observation ``mode`` (e.g. 'grayscale')."""
        return self.active.observation(mode, output)

    def close(self) -> None:
        for env in self.envs:
            env.close()


class SkipMaxPool(gym.Wrapper):
    """Repeat an action ``skip`` frames, sum the rewards, max-pool the last two screens.

    The screens are read with nes-py's native grayscale copy, and only for the last
    two frames: max-pooling needs two (NES sprites flicker between frames), the other
    ``skip - 2`` are never looked at, so they are never copied. This is what
    Gymnasium's AtariPreprocessing does with ALE's grayscale screen. Stops early if
    the episode ends inside the skip; an episode's final screen is returned as it is.
    """

    def __init__(self, env: gym.Env, skip: int = 4) -> None:
        if not isinstance(skip, (int, np.integer)) or skip < 1:
            raise ValueError(f"frame skip must be an integer >= 1, got {skip!r}")
        super().__init__(env)
        self.skip = int(skip)
        height, width = env.observation_space.shape[:2]
        self.observation_space = spaces.Box(0, 255, (height, width), np.uint8)
        self._buffers = np.zeros((2, height, width), dtype=np.uint8)

    def _grab(self, slot: int) -> None:
        self.env.unwrapped.observation("grayscale", output=self._buffers[slot])

    def last_two_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(second-to-last, last) raw grayscale screens of the latest step, as copies.

        Their element-wise maximum is what ``step`` returned (unless the episode ended
        inside the skip); exposed so the notebook and tests can show the max-pool.
        """
        return self._buffers[1].copy(), self._buffers[0].copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        _, info = self.env.reset(seed=seed, options=options)
        self._grab(0)
        return self._buffers[0].copy(), info

    def step(self, action):
        total = 0.0
        terminated = truncated = done = False
        info: dict[str, Any] = {}
        for i in range(self.skip):
            _, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            done = terminated or truncated
            if done or i >= self.skip - 2:
                # Slot 1 holds the second-to-last frame, slot 0 the last one.
                self._grab(0 if (done or i == self.skip - 1) else 1)
            if done:
                break
        if done or self.skip == 1:
            frame = self._buffers[0].copy()  # an episode's final screen is kept as it is
        else:
            frame = np.maximum(self._buffers[0], self._buffers[1])
        return frame, total, terminated, truncated, info


class FrameStackLast(gym.Wrapper):
    """Stack the last ``size`` frames on a trailing channel axis, oldest first.

    Channels-last is Keras' default layout, so observations go into the network as
    they are. ``reset`` fills the whole stack with the first frame (the replay memory
    pads episode starts the same way). The stack lives in one preallocated array;
    each step shifts it in place and returns a copy, so nothing is rebuilt per step.
    """

    def __init__(self, env: gym.Env, size: int = 4) -> None:
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"frame stack size must be an integer >= 1, got {size!r}")
        if len(env.observation_space.shape) != 2:
            raise ValueError(f"FrameStackLast needs 2-D frames, got shape {env.observation_space.shape}")
        super().__init__(env)
        self.size = int(size)
        height, width = env.observation_space.shape
        self.observation_space = spaces.Box(0, 255, (height, width, self.size), np.uint8)
        self._stack = np.zeros((height, width, self.size), dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        frame, info = self.env.reset(seed=seed, options=options)
        self._stack[...] = frame[..., None]
        return self._stack.copy(), info

    def step(self, action):
        frame, reward, terminated, truncated, info = self.env.step(action)
        self._stack[..., :-1] = self._stack[..., 1:]
        self._stack[..., -1] = frame
        return self._stack.copy(), reward, terminated, truncated, info


AREA_TYPE_ADDRESS = 0x074E
"""Super Mario Bros RAM: the type of the area being played (0 water, 1 ground, 2 underground,
3 castle)."""
UNDERGROUND = 2
ON_CEILING_Y = 250
"""``info['y_pos']`` at or above which Mario is on top of an underground ceiling: he runs on
1-2's at 255, while below it his head stops at about 224 (measured in greedy episodes)."""


class CeilingIsDeath(gym.Wrapper):
    """End the episode as a death (terminated, with the game's death reward) on the frame
    Mario climbs onto the ceiling of an underground area.

    Why: in 1-2 (and 4-2) the top of the ceiling leads to the warp zone, a dead end for an
    agent without the Down button, which cannot enter its pipes. The env's progress reward
    pays every pixel of that run, but nothing for the 232-px jump of 1-2's exit pipe (it
    ignores jumps of x_pos > 5 px per frame), so the warp zone pays more than the way to the
    flag, and a DQN learns to take it: a 1-2 run's greedy flag rate fell from 45% to 0% as
    its agent got better at climbing there. No stage of World 1's normal routes goes over
    an underground ceiling, and with the right_only actions 1-1's underground bonus room
    (behind a Down pipe) cannot be entered, so 1-1 is unaffected.

    Sits right above the emulator (below frame skipping) so the episode ends on the frame
    it happens, like the game's own deaths; the reward of that frame becomes the env's
    lowest per-frame reward, which is what a death frame pays after the env's clipping.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.death_reward = float(env.unwrapped.reward_range[0])

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if (not terminated and info.get("y_pos", 0) >= ON_CEILING_Y
                and int(self.env.unwrapped.ram[AREA_TYPE_ADDRESS]) == UNDERGROUND):
            terminated = True
            reward = self.death_reward
        return obs, reward, terminated, truncated, info


PLAYER_X_ADDRESSES = (0x006D, 0x0086)
"""Super Mario Bros RAM: Mario's page (256 px) and x within it; ``info['x_pos']`` is page * 256 + x."""
SCREEN_LEFT_X_ADDRESSES = (0x071A, 0x071C)
"""Super Mario Bros RAM: the page and x of the screen's left edge."""
CASTLE = 3
"""AREA_TYPE_ADDRESS's value in a castle: the only areas with loops (4-4, 7-4, 8-4)."""
LOOPBACK_PX = 4 * 256
"""How far the game's loopback sends Mario and the screen back (ExecGameLoopback in the
disassembly: Player_PageLoc, ScreenLeft_PageLoc and the area parser's pages all minus 4)."""
LOOPBACK_SLACK_PX = 16
"""Mario and the screen may also move a few pixels on the frame of the loop."""


class LoopbackIsDeath(gym.Wrapper):
    """End the episode as a death (terminated, with the game's death reward) on the frame
    the game loops Mario back for taking a wrong route through a castle maze.

    Why: 4-4 and 7-4 check Mario's height at fixed pages and, when it is the wrong one,
    send him four pages (1,024 px) back over ground he has already run (8-4 does the same
    when he passes its pipes). The env's progress reward ignores that jump (it pays no
    x_pos change over 5 px per frame) and then pays every pixel of the same ground again,
    and NoProgressTruncation ends the repeat as a truncation, which bootstraps: a wrong
    route is worth as much as the right one, so nothing teaches the agent the way out.
    Ending a loop as a death makes the wrong route a dead end, which the restarts along
    the furthest episodes then keep away from.

    A loop is recognised by its own signature: in a castle, Mario *and* the screen's left
    edge both 1,024 px (+-16) further back than on the frame before. A pipe or vine into
    another area (which can also put Mario pages back, like 1-1's bonus room with a Down
    button) places the screen afresh, and loops are only in the castles 4-4, 7-4 and 8-4
    (the game's loop table names worlds 4, 7 and 8, and only those areas hold loop
    commands), so elsewhere this never fires. Sits right above the emulator, like
    :class:`CeilingIsDeath`, so the episode ends on the frame it happens. That frame's
    ``info['x_pos']`` is where Mario was just before the loop, where the route went wrong
    (the game's is 1,024 px behind it), so failure traces show the episode ending there,
    and ``info['looped']`` is True (absent otherwise), which is how the trainer learns that
    its stage loops (``agent.loop_gamma``).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.death_reward = float(env.unwrapped.reward_range[0])
        self._where: tuple[int, int, int] | None = None
        self._x_pos: Any = None

    def _position(self) -> tuple[int, int, int]:
        """(area type, Mario's x, the screen's left x) from the RAM."""
        ram = self.env.unwrapped.ram
        return (int(ram[AREA_TYPE_ADDRESS]),
                int(ram[PLAYER_X_ADDRESSES[0]]) * 256 + int(ram[PLAYER_X_ADDRESSES[1]]),
                int(ram[SCREEN_LEFT_X_ADDRESSES[0]]) * 256 + int(ram[SCREEN_LEFT_X_ADDRESSES[1]]))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._where, self._x_pos = self._position(), info.get("x_pos")
        return obs, info

    @staticmethod
    def _looped(before: tuple[int, int, int], after: tuple[int, int, int]) -> bool:
        # Positions are 16-bit (page byte, x byte) and wrap: on 4-4's first loop the
        # screen's page goes from 3 to 255.
        return (before[0] == after[0] == CASTLE
                and all(abs((b - a) % 65536 - LOOPBACK_PX) <= LOOPBACK_SLACK_PX
                        for b, a in zip(before[1:], after[1:])))

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        where = self._position()
        if not terminated and self._where is not None and self._looped(self._where, where):
            terminated = True
            reward = self.death_reward
            info = {**info, "looped": True}
            if self._x_pos is not None:
                info["x_pos"] = self._x_pos
        self._where, self._x_pos = where, info.get("x_pos")
        return obs, reward, terminated, truncated, info


class NoProgressTruncation(gym.Wrapper):
    """Truncate an episode when ``info['x_pos']`` has not improved for ``patience`` steps.

    Mario can stand still or walk into a pipe until the game clock kills him (~400 s of
    game time); cutting that short saves samples. It is a truncation, not a
    termination: the state is not terminal, so the TD target still bootstraps.
    """

    def __init__(self, env: gym.Env, patience: int) -> None:
        if not isinstance(patience, (int, np.integer)) or patience < 1:
            raise ValueError(f"no-progress patience must be an integer >= 1, got {patience!r}")
        super().__init__(env)
        self.patience = int(patience)
        self.best_x = 0
        self.stalled = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.best_x = int(info.get("x_pos", 0))
        self.stalled = 0
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        x_pos = int(info.get("x_pos", 0))
        if x_pos > self.best_x:
            self.best_x = x_pos
            self.stalled = 0
        else:
            self.stalled += 1
        if self.stalled >= self.patience and not terminated:
            truncated = True
        return obs, reward, terminated, truncated, info


class InfoFilter(gym.Wrapper):
    """Keep only ``keys`` of the step/reset ``info`` (see :data:`INFO_KEYS` for why)."""

    def __init__(self, env: gym.Env, keys: Sequence[str] = INFO_KEYS) -> None:
        super().__init__(env)
        self.keys = tuple(keys)

    def _filter(self, info: dict[str, Any]) -> dict[str, Any]:
        return {key: info[key] for key in self.keys if key in info}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, self._filter(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._filter(info)
