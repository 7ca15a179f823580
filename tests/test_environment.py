"""The Mario wrapper stack, checked against the raw emulator it wraps.

The emulator is deterministic, so two fresh envs fed the same actions see the same
frames: that is how the frame-skip test builds its frame-by-frame reference.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import warnings
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np
import pytest
from gym_super_mario_bros import SuperMarioBrosEnv
from gymnasium.utils.env_checker import check_env
from nes_py.wrappers import JoypadSpace

from config import EnvConfig
from mario_dqn.environment import (
    ACTIONS,
    action_meanings,
    final_observations,
    find_wrapper,
    make_env,
    make_vector_env,
)
from mario_dqn.episode_start import RestartFromBest
from mario_dqn.wrappers import CeilingIsDeath, FrameStackLast, LoopbackIsDeath, NoProgressTruncation, SkipMaxPool

RIGHT = 1  # index of ['right'] in every action set
NOOP = 0
PLAIN = EnvConfig(reward_scale=1.0, no_progress_steps=0, max_episode_steps=0)
"""No reward scaling and no truncation: only the game decides when an episode ends."""


def cfg(**changes) -> EnvConfig:
    return dataclasses.replace(PLAIN, **changes)


@pytest.fixture(scope="module")
def env():
    env = make_env(EnvConfig(), seed=0)
    yield env
    env.close()


def test_check_env_passes(env):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped.*")
        check_env(env, skip_render_check=True)


def test_observation_shape_dtype_and_reset_fill(env):
    obs, info = env.reset(seed=1)
    assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8
    assert env.observation_space.shape == (84, 84, 4)
    for channel in range(1, 4):  # reset fills the stack with the first frame
        np.testing.assert_array_equal(obs[..., channel], obs[..., 0])
    assert obs.std() > 10, "the first frame should show the level, not a blank screen"
    for key in ("x_pos", "flag_get", "world", "stage"):
        assert key in info
    assert (info["world"], info["stage"]) == (1, 1)


def test_stack_is_oldest_to_newest(env):
    prev, _ = env.reset(seed=0)
    changed = 0
    for _ in range(12):
        obs, _, terminated, truncated, info = env.step(RIGHT)
        np.testing.assert_array_equal(obs[..., :-1], prev[..., 1:])
        changed += int(not np.array_equal(obs[..., -1], prev[..., -1]))
        for key in ("x_pos", "flag_get", "world", "stage"):
            assert key in info
        assert not (terminated or truncated)
        prev = obs
    assert changed >= 10, "frames should change while Mario runs right"


def _reference_frames(actions: list[int], skip: int) -> tuple[list[float], list[np.ndarray], list[bool]]:
    """Step a raw env frame by frame: per agent step the summed reward, the max of the
    last two grayscale screens, and whether the episode ended inside the skip."""
    raw = JoypadSpace(SuperMarioBrosEnv(target=(1, 1)), ACTIONS["simple"])
    raw.reset()
    rewards, frames, dones = [], [], []
    for action in actions:
        total, screens, done = 0.0, [], False
        for _ in range(skip):
            _, reward, terminated, truncated, _ = raw.step(action)
            total += reward
            screens.append(raw.unwrapped.observation("grayscale").copy())
            done = terminated or truncated
            if done:
                break
        rewards.append(total)
        frames.append(np.maximum(screens[-1], screens[-2]) if len(screens) >= 2 and not done else screens[-1])
        dones.append(done)
        if done:
            break
    raw.close()
    return rewards, frames, dones


def test_frame_skip_sums_rewards_and_max_pools_last_two_frames():
    skip = 4
    rng = np.random.default_rng(3)
    # run right (and jump now and then) until the first Goomba kills Mario
    actions = [int(a) for a in rng.choice([1, 2, 3, 4], size=200, p=[0.7, 0.1, 0.1, 0.1])]
    ref_rewards, ref_frames, ref_dones = _reference_frames(actions, skip)
    wrapped = SkipMaxPool(JoypadSpace(SuperMarioBrosEnv(target=(1, 1)), ACTIONS["simple"]), skip)
    wrapped.reset()
    pooled_differs = 0
    for i, (reward, frame, done) in enumerate(zip(ref_rewards, ref_frames, ref_dones)):
        obs, got_reward, terminated, truncated, _ = wrapped.step(actions[i])
        assert got_reward == pytest.approx(reward)
        np.testing.assert_array_equal(obs, frame)
        assert (terminated or truncated) == done
        if not done:
            last = wrapped.unwrapped.observation("grayscale")
            pooled_differs += int(not np.array_equal(obs, last))
            before_last, reported_last = wrapped.last_two_frames()
            np.testing.assert_array_equal(reported_last, last)
            np.testing.assert_array_equal(np.maximum(before_last, reported_last), obs)
    assert any(ref_rewards), "the rollout should earn some reward"
    assert pooled_differs > 0, "max-pooling should differ from the last frame somewhere"
    wrapped.close()


def test_resize_uses_inter_area():
    env = make_env(cfg(), seed=0)
    obs, _ = env.reset(seed=0)
    raw = SuperMarioBrosEnv(target=(1, 1))
    raw.reset()
    gray = raw.observation("grayscale")
    expected = cv2.resize(gray, (84, 84), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(obs[..., -1], expected)
    env.close()
    raw.close()


def test_real_death_is_terminated_not_truncated():
    env = make_env(cfg(), seed=0)
    env.reset(seed=0)
    for _ in range(300):  # running right only, the first Goomba kills Mario
        _, reward, terminated, truncated, info = env.step(RIGHT)
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert not info["flag_get"]
    assert reward < 0, "death is penalised"
    env.close()


def test_no_progress_cutoff_truncates():
    patience = 7
    env = make_env(cfg(no_progress_steps=patience), seed=0)
    env.reset(seed=0)
    ends = []
    for step in range(1, 30):
        _, _, terminated, truncated, _ = env.step(NOOP)  # standing still: no progress
        if terminated or truncated:
            ends.append((step, terminated, truncated))
            break
    assert ends == [(patience, False, True)]
    assert find_wrapper(env, NoProgressTruncation).stalled == patience
    env.close()


def test_progress_resets_the_no_progress_counter():
    env = make_env(cfg(no_progress_steps=5), seed=0)
    env.reset(seed=0)
    for _ in range(20):  # running right improves x_pos every step
        _, _, terminated, truncated, _ = env.step(RIGHT)
        assert not truncated
        if terminated:
            break
    env.close()


def test_time_limit_truncates():
    env = make_env(cfg(max_episode_steps=3), seed=0)
    env.reset(seed=0)
    flags = [env.step(NOOP)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    env.close()


Y_VIEWPORT = 0x00B5
"""RAM: Mario's vertical screen (0 = above the top of the screen, 1 = on it)."""


@pytest.mark.parametrize("stages, end_on_ceiling, ends", [(("1-2",), True, True), (("1-2",), False, False),
                                                           (("1-1",), True, False), (("1-2", "1-2"), True, True)])
def test_mario_above_an_underground_ceiling_is_a_death(stages, end_on_ceiling, ends):
    """The real emulator, with Mario put above the top of the screen through its RAM (where
    standing on 1-2's ceiling puts him): a death in 1-2's underground, nothing in 1-1 (a
    ground area, where he may jump off the top of the screen), nothing when switched off;
    and through StageSelector, whose ``ram`` is the active emulator's."""
    env = make_env(cfg(stages=stages, end_on_ceiling=end_on_ceiling), seed=0)
    env.reset(seed=0)
    for _ in range(8):  # Mario falls in from the top at 1-2's start; let him land first
        _, _, terminated, _, info = env.step(NOOP)
    assert not terminated and info["y_pos"] == 79
    env.unwrapped.ram[Y_VIEWPORT] = 0
    _, reward, terminated, truncated, info = env.step(NOOP)
    assert info["y_pos"] >= 250 and not truncated
    assert terminated is ends
    if ends:  # the game's death reward (its clipped floor) on the frame it happened, which ends the skip
        assert reward == -15.0
    else:
        assert reward > -15.0
    env.close()


class _Scripted(gym.Env):
    """Replays (y_pos, area type, terminated) per step, with a RAM and a reward range."""

    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(1)
    reward_range = (-15, 15)

    def __init__(self, script):
        self.script, self.ram = list(script), np.zeros(2048, np.uint8)

    def reset(self, *, seed=None, options=None):
        return 0, {"y_pos": 79}

    def step(self, action):
        y_pos, area, terminated = self.script.pop(0)
        self.ram[0x074E] = area
        return 0, 1.0, terminated, False, {"y_pos": y_pos}


def test_ceiling_rule_reads_underground_height_and_leaves_other_ends_alone():
    env = CeilingIsDeath(_Scripted([(224, 2, False), (250, 1, False), (249, 2, False), (250, 2, True),
                                    (255, 2, False)]))
    env.reset()
    steps = [env.step(0)[1:3] for _ in range(5)]
    # a head-bump below the ceiling, high in a ground area, just under the line: played on;
    # a death the game already ended keeps its own reward; on the ceiling underground: a death
    assert steps == [(1.0, False), (1.0, False), (1.0, False), (1.0, True), (-15.0, True)]


DATA = Path(__file__).parent / "data"


def _recorded_actions(name: str) -> list[int]:
    recorded = json.loads((DATA / name).read_text())
    return [action for action, frames in recorded["actions"] for _ in range(frames)]


@pytest.mark.parametrize("wrapped", [False, True])
def test_4_4_s_loop_back_for_a_wrong_route_is_a_death(wrapped):
    """The real emulator on 4-4, replaying a recorded route (found by a search) whose last
    frame is the game's loopback: x_pos falls 1,023 px on that frame. Unwrapped, Mario plays
    on and the env pays nothing for it; wrapped, the episode ends there as a death."""
    env = JoypadSpace(SuperMarioBrosEnv(target=(4, 4)), ACTIONS["right_only"])
    if wrapped:
        env = LoopbackIsDeath(env)
    env.reset(seed=0)
    actions = _recorded_actions("loopback-4-4.json")
    xs = []
    for i, action in enumerate(actions):
        _, reward, terminated, truncated, info = env.step(action)
        xs.append(info["x_pos"])
        assert not truncated and (not terminated or i == len(actions) - 1), (i, xs[-3:])
    assert info["life"] == 2
    if wrapped:  # the loop's frame reports where Mario was before it, where the route went wrong
        assert (terminated, reward, xs[-2], xs[-1], info["looped"]) == (True, -15.0, 1033, 1033, True)
    else:
        assert (terminated, reward, xs[-2], xs[-1]) == (False, 0.0, 1033, 10) and "looped" not in info
    env.close()


def test_a_pipe_that_puts_mario_pages_back_is_not_a_loop():
    """The real emulator on 1-1 with the Down button, replaying a recorded route into the
    bonus room: x_pos falls from 916 to 24 (3.5 pages) and the area pointer was set to the
    room's before Mario reached the pipe, so only the loop's own signature tells the two
    apart. The wrapped episode plays on."""
    env = LoopbackIsDeath(JoypadSpace(SuperMarioBrosEnv(target=(1, 1)), ACTIONS["complex"]))
    env.reset(seed=0)
    xs = []
    for action in _recorded_actions("bonus-pipe-1-1.json"):
        _, reward, terminated, truncated, info = env.step(action)
        xs.append(info["x_pos"])
        assert not terminated and not truncated and "looped" not in info
    fall = max(a - b for a, b in zip(xs, xs[1:]))
    assert fall == 916 - 24 and xs[-1] < 100 and info["life"] == 2
    env.close()


@pytest.mark.parametrize("left_becomes", [None, 0, 1])
def test_4_4_s_second_check_is_passed_only_by_a_route_that_moves_left(left_becomes):
    """The real emulator on 4-4, replaying a recorded route (a kept training episode, then a
    search with SIMPLE_MOVEMENT): Mario walks back left over the middle floor, drops through
    its one-block gap to the bottom floor and passes the second loop check (page 9) at the
    height it asks for. The same route with each Left press replaced by NOOP or Right is
    looped back at that check. The gap lies under a hanging block right of a pillar, so it is
    reached only moving left; searches with RIGHT_ONLY found no way past (docs/every-stage.md)."""
    left = ACTIONS["simple"].index(["left"])
    env = LoopbackIsDeath(JoypadSpace(SuperMarioBrosEnv(target=(4, 4)), ACTIONS["simple"]))
    env.reset(seed=0)
    actions = _recorded_actions("lower-route-4-4.json")
    assert actions.count(left) > 0
    furthest = 0
    for action in actions:
        action = left_becomes if (action == left and left_becomes is not None) else action
        _, _, terminated, truncated, info = env.step(action)
        furthest = max(furthest, info["x_pos"])
        if terminated or truncated:
            break
    env.close()
    if left_becomes is None:
        assert (terminated, truncated, info["x_pos"], info["life"]) == (False, False, 2150, 2)
        assert "looped" not in info
    else:
        assert terminated and info["looped"] and furthest < 2100


def test_make_env_ends_a_loop_in_training_only():
    config = cfg(stages=("4-4",))
    assert find_wrapper(make_env(config, training=True), LoopbackIsDeath) is not None
    assert find_wrapper(make_env(config), LoopbackIsDeath) is None  # evaluation plays on, as the game does
    assert find_wrapper(make_env(cfg(stages=("4-4",), end_on_loopback=False), training=True), LoopbackIsDeath) is None


class _Positions(_Scripted):
    """Replays (area type, Mario's x, the screen's left x, terminated) per step, into the RAM."""

    def _write(self, area, mario, screen):
        self.ram[0x074E] = area
        self.ram[0x006D], self.ram[0x0086] = divmod(mario % 65536, 256)
        self.ram[0x071A], self.ram[0x071C] = divmod(screen % 65536, 256)

    def reset(self, *, seed=None, options=None):
        self._write(*self.start)
        return 0, {"x_pos": self.start[1]}

    def step(self, action):
        area, mario, screen, terminated = self.script.pop(0)
        self._write(area, mario, screen)
        return 0, 1.0, terminated, False, {"x_pos": mario}


def test_loop_rule_wants_mario_and_the_screen_four_pages_back_in_a_castle():
    castle, underground = 3, 2
    script = [(castle, 1500, 1400, False),  # onward
              (castle, 1496, 1400, False),  # a step back
              (castle, 1496 - 1030, 1400 - 1020, False),  # both 4 pages back, +-16: a loop
              (castle, 600, 500, False),  # onward again (a new episode would have begun here)
              (castle, 600 - 1024, 500 - 1024, False),  # back across page 0 (the bytes wrap): a loop
              (castle, 1200, 1100, False),
              (castle, 1200 - 1024, 0, False),  # Mario 4 pages back, the screen placed afresh: a pipe
              (underground, 1200, 1100, False),
              (underground, 1200 - 1024, 1100 - 1024, False),  # not a castle: played on
              (castle, 1200, 1100, False),
              (castle, 1200 - 1024, 1100 - 1024, True),  # the game ended it itself: its reward kept
              (castle, 1200, 1100, False),
              (castle, 1200 - 1050, 1100 - 1024, False)]  # 26 px more than 4 pages: played on
    env = _Positions(script)
    env.start = (castle, 1490, 1400)
    env = LoopbackIsDeath(env)
    env.reset()
    steps = [env.step(0) for _ in range(len(script))]
    assert [(reward, terminated) for _, reward, terminated, _, _ in steps] == [
        (1.0, False), (1.0, False), (-15.0, True), (1.0, False), (-15.0, True), (1.0, False), (1.0, False),
        (1.0, False), (1.0, False), (1.0, False), (1.0, True), (1.0, False), (1.0, False)]
    # a loop's x_pos is the one before it
    assert [steps[i][4]["x_pos"] for i in (2, 4, 6)] == [1496, 600, 1200 - 1024]


def test_reward_scale_multiplies_the_reward():
    actions = [RIGHT] * 15
    rewards = {}
    for scale in (1.0, 0.25):
        env = make_env(cfg(reward_scale=scale), seed=0)
        env.reset(seed=0)
        rewards[scale] = [env.step(a)[1] for a in actions]
        env.close()
    assert sum(rewards[1.0]) > 0
    np.testing.assert_allclose(np.array(rewards[0.25]), 0.25 * np.array(rewards[1.0]))


@pytest.mark.parametrize(
    "name,expected",
    [
        ("right_only", [0b0, 0b10000000, 0b10000001, 0b10000010, 0b10000011]),
        ("simple", [0b0, 0b10000000, 0b10000001, 0b10000010, 0b10000011, 0b00000001, 0b01000000]),
        ("complex", [0b0, 0b10000000, 0b10000001, 0b10000010, 0b10000011, 0b00000001, 0b01000000,
                     0b01000001, 0b01000010, 0b01000011, 0b00100000, 0b00010000]),
    ],
)
def test_action_sets_map_to_the_right_buttons(name, expected):
    # NES controller byte: right=0x80, left=0x40, down=0x20, up=0x10, B=0x02, A=0x01
    env = make_env(cfg(action_set=name))
    joypad = find_wrapper(env, JoypadSpace)
    assert env.action_space.n == len(expected)
    assert [joypad._action_map[i] for i in range(len(expected))] == expected
    assert action_meanings(cfg(action_set=name))[1] == "right"
    env.close()


def test_seeding_makes_rollouts_identical_and_samples_stages():
    config = cfg(stages=("1-1", "1-2", "4-1"), no_progress_steps=3, action_set="simple")  # actions 5, 6 below
    runs = []
    for _ in range(2):
        env = make_env(config)
        obs, info = env.reset(seed=123)
        trace = [(info["world"], info["stage"], obs.sum())]
        rng = np.random.default_rng(0)
        for _ in range(60):  # mostly standing or walking left: frequent no-progress cutoffs
            action = int(rng.choice([NOOP, 5, 6, RIGHT], p=[0.5, 0.2, 0.2, 0.1]))
            obs, reward, terminated, truncated, info = env.step(action)
            trace.append((info["world"], info["stage"], obs.sum(), reward))
            if terminated or truncated:
                obs, info = env.reset()
                trace.append((info["world"], info["stage"], obs.sum()))
        runs.append(trace)
        env.close()
    assert runs[0] == runs[1]
    stages_seen = {(t[0], t[1]) for t in runs[0]}
    assert len(stages_seen) >= 2, f"several stages should be sampled, saw {stages_seen}"
    assert stages_seen <= {(1, 1), (1, 2), (4, 1)}


def test_render_rgb_array_gives_full_resolution_frames():
    env = make_env(cfg(), seed=0, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(RIGHT)
    frame = env.render()
    assert frame.shape == (240, 256, 3) and frame.dtype == np.uint8
    assert frame.std() > 10
    env.close()


@pytest.mark.parametrize(
    "changes,word",
    [
        ({"stages": ("9-1",)}, "world"),
        ({"stages": ("1-5",)}, "stage"),
        ({"stages": ()}, "stages"),
        ({"action_set": "everything"}, "action_set"),
        ({"frame_skip": 0}, "frame_skip"),
        ({"stack_size": 0}, "stack_size"),
        ({"frame_size": 4}, "frame_size"),
        ({"reward_scale": 0.0}, "reward_scale"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(changes, word):
    with pytest.raises(ValueError, match=word):
        make_env(cfg(**changes))


def test_bad_render_mode_and_env_count():
    with pytest.raises(ValueError, match="render_mode"):
        make_env(cfg(), render_mode="human-eyes")
    with pytest.raises(ValueError, match="num_envs"):
        make_vector_env(cfg(), 0)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_vector_env_same_step_autoreset(asynchronous):
    patience = 4
    venv = make_vector_env(cfg(no_progress_steps=patience), 2, asynchronous=asynchronous)
    try:
        obs, info = venv.reset(seed=0)
        assert obs.shape == (2, 84, 84, 4) and obs.dtype == np.uint8
        # env 0 stands still (truncated after `patience` steps), env 1 runs right
        for step in range(1, patience + 1):
            prev = obs
            obs, rewards, terminated, truncated, info = venv.step(np.array([NOOP, RIGHT]))
            if step < patience:
                assert not truncated.any() and not terminated.any()
        assert truncated.tolist() == [True, False] and not terminated.any()
        # env 0 was reset in the same step: a fresh stack of four equal frames ...
        for channel in range(1, 4):
            np.testing.assert_array_equal(obs[0, ..., channel], obs[0, ..., 0])
        # ... and its true last observation continues the previous stack
        next_obs = final_observations(obs, terminated, truncated, info)
        np.testing.assert_array_equal(next_obs[0, ..., :-1], prev[0, ..., 1:])
        np.testing.assert_array_equal(next_obs[1], obs[1])
        assert info["x_pos"][1] > 40, "env 1 ran right and was not reset"
    finally:
        venv.close()


def test_wrappers_check_their_arguments():
    base = gym.make("CartPole-v1")
    with pytest.raises(ValueError, match="frame skip"):
        SkipMaxPool(JoypadSpace(SuperMarioBrosEnv(target=(1, 1)), ACTIONS["simple"]), 0)
    with pytest.raises(ValueError, match="2-D frames"):
        FrameStackLast(base, 4)
    with pytest.raises(ValueError, match="patience"):
        NoProgressTruncation(base, 0)
    base.close()


def test_episode_state_round_trip_continues_the_same_episode():
    """A fresh env rebuilt from get_episode_state() continues bit-for-bit."""
    config = cfg(stages=("1-1", "1-2"), no_progress_steps=20, max_episode_steps=500)
    rng = np.random.default_rng(5)
    actions = [int(a) for a in rng.choice([1, 2, 3, 4], size=60)]
    first = make_env(config)
    first.reset(seed=11)
    first.reset()  # a second, unseeded episode: its stage comes from the RNG stream
    for action in actions[:25]:
        obs1, *_ = first.step(action)
    state = json.loads(json.dumps(first.get_episode_state()))  # survives JSON
    second = make_env(config)
    obs2, info2 = second.set_episode_state(state)
    np.testing.assert_array_equal(obs2, obs1)
    for action in actions[25:]:
        a = first.step(action)
        b = second.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4] and a[4] == b[4]
        if a[2] or a[3]:
            break
    # the RNG streams agree too: the next episodes start on the same stage
    assert first.reset()[1]["stage"] == second.reset()[1]["stage"]
    first.close()
    second.close()


def test_restart_from_best_starts_episodes_along_the_furthest_one():
    """With probability 1, every reset after an episode ends replays that episode to a
    drawn step: the observation and x_pos are the ones the episode had there, and the
    info says how many steps were replayed. Evaluation envs never restart."""
    config = cfg(restart_from_best=1.0, restart_keep=2, max_episode_steps=40)
    assert find_wrapper(make_env(config), RestartFromBest) is None, "evaluation/play envs start at the stage start"
    env = make_env(config, training=True)
    try:
        obs, info = env.reset(seed=3)
        assert info["restart_steps"] == 0, "nothing kept yet: the stage start"
        seen, xs, done = [obs], [info["x_pos"]], False
        while not done:  # walk right until the time limit (or a goomba) ends it
            obs, _, terminated, truncated, info = env.step(RIGHT)
            seen.append(obs)
            xs.append(info["x_pos"])
            done = terminated or truncated
        kept = find_wrapper(env, RestartFromBest).best["1-1"]
        furthest = int(np.argmax(xs))
        assert kept == [(max(xs), [RIGHT] * min(furthest, len(xs) - 2))], "to its furthest x, never its last step"
        starts = set()
        for _ in range(8):
            obs, info = env.reset()
            t = info["restart_steps"]
            starts.add(t)
            assert 0 <= t <= len(kept[0][1])
            np.testing.assert_array_equal(obs, seen[t])
            assert info["x_pos"] == xs[t]
        assert len(starts) > 1, "the restart step is drawn, not fixed"
        obs, _, _, _, info = env.step(RIGHT)  # and the episode goes on from there as it did
        np.testing.assert_array_equal(obs, seen[t + 1])
        assert info["restart_steps"] == t
    finally:
        env.close()


def test_restart_from_best_keeps_the_furthest_episodes_of_each_stage():
    """Hand-made episodes: the ``keep`` furthest per stage stay, each cut at its furthest
    step (and before its last one); a tie with the last kept does not replace it."""
    wrapper = RestartFromBest(make_env(PLAIN), probability=0.5, keep=2)

    def finish(stage: str, xs: list[int]) -> None:
        wrapper._stage, wrapper._actions = stage, list(range(len(xs)))
        wrapper._best_x = max(xs)
        wrapper._best_len = xs.index(max(xs)) + 1
        wrapper._remember()

    finish("1-1", [50, 300, 200])          # furthest after 2 actions
    finish("1-1", [100, 400, 400, 450])    # furthest at its last action: cut before it
    finish("1-1", [60, 300])               # ties the last kept (300): not kept
    finish("1-3", [700])                   # ended on its first action: nothing to replay
    finish("1-2", [10, 20, 30, 40, 35])
    assert wrapper.best == {"1-1": [(450, [0, 1, 2]), (300, [0, 1])], "1-2": [(40, [0, 1, 2, 3])]}
    finish("1-1", [500, 10])               # the new furthest pushes out the nearest
    assert wrapper.best["1-1"] == [(500, [0]), (450, [0, 1, 2])]
    with pytest.raises(ValueError, match="probability"):
        RestartFromBest(make_env(PLAIN), probability=1.5, keep=2)
    with pytest.raises(ValueError, match="keep"):
        RestartFromBest(make_env(PLAIN), probability=0.5, keep=0)


def test_guided_restart_steps_follow_the_kept_episode_whatever_the_agent_asks():
    """env.restart_guided: after the hidden replay, the next steps take the kept episode's
    actions (and say so in info), then the agent's own again."""
    config = cfg(restart_from_best=1.0, restart_keep=1, restart_guided=5, max_episode_steps=40)
    env = make_env(config, training=True)
    try:
        obs, info = env.reset(seed=3)
        assert info["guided_action"] == -1
        seen, done = [obs], False
        while not done:
            obs, _, terminated, truncated, info = env.step(RIGHT)
            assert info["guided_action"] == -1, "nothing kept yet: the agent's own actions"
            seen.append(obs)
            done = terminated or truncated
        kept = find_wrapper(env, RestartFromBest).best["1-1"][0][1]
        checked = 0
        for _ in range(6):
            obs, info = env.reset()
            t = info["restart_steps"]
            guided = min(5, len(kept) - t)
            for k in range(guided):
                obs, _, _, _, info = env.step(NOOP)  # the agent asks for NOOP; the kept episode ran right
                assert info["guided_action"] == RIGHT
                np.testing.assert_array_equal(obs, seen[t + k + 1])
                checked += 1
            obs, _, _, _, info = env.step(NOOP)
            assert info["guided_action"] == -1, "then the agent's own action"
        assert checked > 0
    finally:
        env.close()


def test_frontier_weights_favour_parts_where_restarts_succeed_about_half_the_time():
    """floor + p (1 - p), normalised, against hand-computed values."""
    from mario_dqn.episode_start import frontier_weights

    weights = frontier_weights([0.5, 0.0, 1.0, 0.1], floor=0.05)
    np.testing.assert_allclose(weights, np.array([0.30, 0.05, 0.05, 0.14]) / 0.54)
    np.testing.assert_allclose(frontier_weights([0.2] * 10), [0.1] * 10)


@pytest.mark.parametrize("length", [0, 1, 5, 37, 200])
def test_restart_parts_cover_every_step_of_the_kept_episode(length):
    """start_in_part: each part draws within its tenth of [1, length], and together the
    parts reach every step the uniform draw reaches but the stage start (step 0, unless
    there is nothing to replay), the last (length itself) included."""
    from mario_dqn.episode_start import FRONTIER_BINS, start_in_part

    rng = np.random.default_rng(0)
    reached = set()
    for part in range(FRONTIER_BINS):
        draws = {start_in_part(rng, length, part) for _ in range(200)}
        low = max(length * part // FRONTIER_BINS, min(length, 1))
        assert min(draws) >= low
        assert max(draws) <= max(length * (part + 1) // FRONTIER_BINS, low)
        reached |= draws
    assert reached == (set(range(1, length + 1)) if length else {0})


def test_a_frontier_restart_scores_its_part_by_the_flag_or_the_kept_episodes_reach():
    """_score: the part's estimate moves FRONTIER_RATE of the way to 1 when the episode got
    further than the kept one (or took the flag), to 0 when it did not (as far is not enough:
    the guide leads a late restart there); episodes from the stage start leave every
    estimate alone."""
    from mario_dqn.episode_start import FRONTIER_BINS, FRONTIER_RATE

    wrapper = RestartFromBest(make_env(PLAIN), probability=0.5, keep=2, frontier=True)
    wrapper.close()  # only its bookkeeping is used
    wrapper._stage, wrapper.success = "4-3", {"4-3": [0.5] * FRONTIER_BINS}

    def finish(part: int, best_x: int, flag: bool = False) -> None:
        wrapper._part, wrapper._target_x, wrapper._best_x = part, 1000, best_x
        wrapper._score(flag)

    finish(3, 1001)
    finish(4, 1000)
    finish(5, 700, flag=True)
    finish(-1, 5000)
    expected = [0.5] * FRONTIER_BINS
    expected[3] = 0.5 + FRONTIER_RATE * 0.5
    expected[4] = 0.5 - FRONTIER_RATE * 0.5
    expected[5] = 0.5 + FRONTIER_RATE * 0.5
    assert wrapper.success["4-3"] == pytest.approx(expected)
    assert wrapper._part == -1


def test_frontier_restarts_start_mostly_where_success_is_even():
    """env.restart_frontier: with one part at an even chance and the others sure or
    hopeless, restarts begin in that part of the kept episode four times as often as the
    uniform draw would (weights 0.30 against 0.05 each: 0.30 / 0.75 = 40%, not 10%)."""
    from mario_dqn.episode_start import FRONTIER_BINS

    config = cfg(restart_from_best=1.0, restart_keep=1, restart_frontier=True, max_episode_steps=40)
    env = make_env(config, training=True)
    try:
        env.reset(seed=3)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(RIGHT)
            done = terminated or truncated
        wrapper = find_wrapper(env, RestartFromBest)
        length = len(wrapper.best["1-1"][0][1])
        assert "1-1" not in wrapper.success, "nothing restarted yet: no estimates (each part starts at 0.5)"
        wrapper.success["1-1"] = [0.0] * 7 + [0.5] + [1.0] * 2
        part7 = range(length * 7 // FRONTIER_BINS, length * 8 // FRONTIER_BINS)
        starts = []
        for _ in range(60):  # a reset before the episode ends: no outcome, the estimates stay
            _, info = env.reset()
            starts.append(info["restart_steps"])
            env.step(RIGHT)
        share = sum(t in part7 for t in starts) / len(starts)
        assert 0.2 < share < 0.65, (share, starts)
        assert wrapper.success["1-1"] == [0.0] * 7 + [0.5] + [1.0] * 2
        assert 0 not in starts, "a restart replays at least one step"
    finally:
        env.close()


def test_exploration_steps_after_the_guide_take_held_random_actions():
    """env.restart_explore: after the guided steps, the next ones take random actions held
    1-EXPLORE_HOLD steps (info says which, and they are the ones the episode records), then
    the agent's own again; episodes from the stage start never explore."""
    from mario_dqn.episode_start import EXPLORE_HOLD, ResumableEpisode

    config = cfg(restart_from_best=1.0, restart_keep=1, restart_guided=2, restart_explore=12, max_episode_steps=60)
    env = make_env(config, training=True)
    try:
        env.reset(seed=5)
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(RIGHT)
            assert info["guided_action"] == -1, "from the stage start: the agent's own actions"
            done = terminated or truncated
        record = find_wrapper(env, ResumableEpisode)
        explored, handed_back = [], 0
        for _ in range(6):
            _, info = env.reset()
            t, kept = info["restart_steps"], find_wrapper(env, RestartFromBest).best["1-1"][0][1]
            steps, done = [], False
            while not done and len(steps) < min(2, len(kept) - t) + 12 + 1:
                _, _, terminated, truncated, info = env.step(NOOP)
                steps.append(info["guided_action"])
                assert record._actions[-1] == (NOOP if steps[-1] < 0 else steps[-1]), "info says the action taken"
                done = terminated or truncated
            guided = min(2, len(kept) - t)
            assert steps[:guided] == kept[t:t + guided]
            explore = steps[guided:guided + 12]
            assert all(0 <= a < env.action_space.n for a in explore)
            explored.append(explore)
            if not done:
                assert steps[-1] == -1, "after the exploration steps, the agent's own"
                handed_back += 1
        assert handed_back > 0
        runs = [len(list(group)) for ep in explored for group in itertools.groupby(ep)]
        assert max(runs) <= EXPLORE_HOLD and max(runs) > 1, "each action is held 1-EXPLORE_HOLD steps"
        assert len({a for ep in explored for a in ep}) > 2, "drawn actions, not one fixed"
    finally:
        env.close()


def test_noop_starts_hide_a_drawn_number_of_no_ops_before_a_training_episode():
    """env.noop_max: a training reset takes 0..noop_max no-ops (recorded, so replays and
    checkpoints rebuild the state) and returns the state after them; the number is drawn
    per episode; evaluation envs and episodes restarted along a kept one get none."""
    from mario_dqn.episode_start import NoopStart, ResumableEpisode

    assert find_wrapper(make_env(cfg(noop_max=30)), NoopStart) is None, "evaluation draws its own no-ops"
    env = make_env(cfg(noop_max=30, max_episode_steps=80), training=True)
    plain = make_env(cfg(max_episode_steps=80))
    try:
        counts = []
        obs, _ = env.reset(seed=2)
        for _ in range(6):
            actions = find_wrapper(env, ResumableEpisode)._actions
            assert actions == [NOOP] * len(actions) and len(actions) <= 30
            counts.append(len(actions))
            expected, _ = plain.reset(seed=0)
            for _ in actions:
                expected, *_ = plain.step(NOOP)
            np.testing.assert_array_equal(obs, expected)
            obs, _ = env.reset()
        assert len(set(counts)) > 2, counts
        restarting = make_env(cfg(noop_max=30, restart_from_best=1.0, max_episode_steps=40), training=True)
        try:
            restarting.reset(seed=2)
            noops = len(find_wrapper(restarting, ResumableEpisode)._actions)
            done = False
            while not done:
                *_, terminated, truncated, _ = restarting.step(RIGHT)
                done = terminated or truncated
            kept = find_wrapper(restarting, RestartFromBest).best["1-1"][0][1]
            assert kept[:noops] == [NOOP] * noops and RIGHT in kept, "kept episodes hold their no-ops"
            _, info = restarting.reset()
            assert info["restart_steps"] > 0
            assert len(find_wrapper(restarting, ResumableEpisode)._actions) == info["restart_steps"], \
                "a restarted episode starts where the kept one was: no more no-ops"
        finally:
            restarting.close()
    finally:
        env.close()
        plain.close()


def test_taken_actions_are_the_guided_ones_where_an_env_was_guided():
    from mario_dqn.environment import taken_actions

    asked = np.array([3, 1, 4, 0])
    assert taken_actions(asked, {"x_pos": np.zeros(4)}) is asked, "without restarts: the actions asked for"
    taken = taken_actions(asked, {"guided_action": np.array([-1, 2, -1, 0])})
    assert taken.tolist() == [3, 2, 4, 0] and taken.dtype == asked.dtype
    # envs 1 and 2 ended in this step and reset (-1): their step's entries are in final_info
    ended = {"guided_action": np.array([-1, -1, -1, 0]), "final_info": {
        "guided_action": np.array([0, 2, -1, 0]), "_guided_action": np.array([False, True, True, False])}}
    assert taken_actions(asked, ended).tolist() == [3, 2, 4, 0]


def test_a_training_env_reports_the_loop_to_the_trainer():
    """``info['looped']`` (agent.loop_gamma's trigger) comes through the whole training stack,
    InfoFilter included: the recorded wrong route of 4-4, one action per frame."""
    env = make_env(cfg(stages=("4-4",), frame_skip=1, no_progress_steps=0, max_episode_steps=0), training=True)
    env.reset(seed=0)
    actions = _recorded_actions("loopback-4-4.json")
    for i, action in enumerate(actions):
        _, _, terminated, truncated, info = env.step(action)
        assert not truncated and (not terminated or i == len(actions) - 1)
        assert info.get("looped", False) == (i == len(actions) - 1)
    assert terminated and info["x_pos"] == 1033
    env.close()
