"""``play --record --explain``: what the agent sees and values, frame by frame.

The frame composer is checked on hand-made inputs (the highlighted bar, the input frames
in order, the status fields drawn); ``evaluate``'s ``on_step`` against the agent itself
(the Q-values the action came from, x_pos and return so far as ``evaluate`` reports
them, and the same results and random draws as without it); a video of the shipped agent
read back (its Q-value panel moves as the episode goes on); the CLI end to end on a tiny
run (one video frame per state, the expected size).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import config as C
from mario_dqn import explain
from mario_dqn.explain import (BACKGROUND, BAR, GREEDY, HEIGHT, RANDOM, STATUS_BOX, WIDTH, bar_box, compose,
                                stack_box)

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = ROOT / "save" / "pretrained" / "world-1-1"
NAMES = ["NOOP", "right", "right A", "right B", "right A B"]


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def hand_made() -> tuple[np.ndarray, np.ndarray]:
    """A random 240x256 screen, and an 84x84x4 stack whose frames differ: frame k is a
    diagonal gradient offset by 60 * k, so each one and its order can be recognised."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (240, 256, 3), dtype=np.uint8)
    ramp = (np.add.outer(np.arange(84), np.arange(84)) % 50).astype(np.uint8)
    obs = np.stack([ramp + 60 * k for k in range(4)], axis=-1).astype(np.uint8)
    return frame, obs


def colour_share(region: np.ndarray, colour: tuple[int, int, int]) -> float:
    return float(np.mean(np.all(region == np.array(colour, np.uint8), axis=-1)))


def test_the_frame_shows_the_game_and_the_four_input_frames_oldest_first():
    frame, obs = hand_made()
    image = compose(frame, obs, np.array([0.5, 2.0, -1.0, 3.5, 1.0]), 3, NAMES)
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[:480, :512], np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1))
    boxes = [stack_box(k) for k in range(4)]
    for k, box in enumerate(boxes):
        cell = np.repeat(np.repeat(obs[..., k], 2, axis=0), 2, axis=1)  # nearest-neighbour, 2x
        for channel in range(3):  # grey: the same in R, G and B
            np.testing.assert_array_equal(box.of(image)[..., channel], cell)
    # read like text: oldest top-left, newest bottom-right, all beside the game
    assert boxes[0].top == boxes[1].top < boxes[2].top == boxes[3].top
    assert boxes[0].left == boxes[2].left < boxes[1].left == boxes[3].left
    assert all(box.left >= 512 and box.top + box.height <= HEIGHT for box in boxes)


def test_the_chosen_action_is_highlighted_greedy_or_random():
    frame, obs = hand_made()
    q = np.array([0.5, 2.0, -1.0, 3.5, 1.0])
    greedy = compose(frame, obs, q, 3, NAMES)
    for a in range(5):
        share = colour_share(bar_box(a, 5).of(greedy), GREEDY)
        assert share > 0.2 if a == 3 else share == 0, (a, share)
    assert colour_share(greedy, RANDOM) == 0
    # longer bars for larger values, and the negative one still drawn
    lengths = [colour_share(bar_box(a, 5).of(greedy), GREEDY if a == 3 else BAR) for a in range(5)]
    assert lengths[3] == max(lengths) and lengths[2] > 0
    assert np.argsort(lengths[:2] + lengths[3:]).tolist() == np.argsort([0.5, 2.0, 3.5, 1.0]).tolist()

    random = compose(frame, obs, q, 1, NAMES, explored=True, epsilon=0.1)
    assert colour_share(bar_box(1, 5).of(random), RANDOM) > 0.2
    assert colour_share(random, GREEDY) == 0  # no orange anywhere: the greedy action was not taken
    assert colour_share(bar_box(3, 5).of(random), BAR) > 0.2  # the argmax, not chosen: plain
    noop = compose(frame, obs, q, 0, NAMES, noop=True)
    assert colour_share(bar_box(0, 5).of(noop), RANDOM) > 0.05  # a short bar: Q = 0.5


def test_the_last_state_of_an_episode_has_no_bars():
    frame, obs = hand_made()
    image = compose(frame, obs, None, None, NAMES)
    q_panel = image[:, 512 + explain.STACK_WIDTH:]
    assert colour_share(q_panel, BAR) == colour_share(q_panel, GREEDY) == colour_share(q_panel, RANDOM) == 0


def test_the_status_shows_episode_step_x_pos_return_so_far_and_epsilon():
    frame, obs = hand_made()
    q = np.array([0.5, 2.0, -1.0, 3.5, 1.0])
    status = {"episode": 1, "step": 40, "x_pos": 300, "episode_return": 12.5, "epsilon": 0.0}
    image = compose(frame, obs, q, 3, NAMES, **status)
    outside = np.ones((HEIGHT, WIDTH), bool)
    STATUS_BOX.of(outside)[...] = False
    for field, other in [("episode", 2), ("step", 41), ("x_pos", 301), ("episode_return", 12.6), ("epsilon", 0.05)]:
        differs = np.any(compose(frame, obs, q, 3, NAMES, **{**status, field: other}) != image, axis=-1)
        assert differs.any(), f"{field} is not drawn"
        assert not differs[outside].any(), f"{field} is drawn outside the status box"
    assert STATUS_BOX.top >= max(stack_box(k).top + stack_box(k).height for k in range(4))


@pytest.fixture(scope="module")
def small_agent():
    """An untrained agent on short episodes: config and agent."""
    from mario_dqn.environment import ACTIONS
    from mario_dqn.build import build_agent

    config = C.apply_overrides(C.Config(), ["max_episode_steps=25", "network=small"])
    return config, build_agent(config, len(ACTIONS[config.env.action_set]))


def test_on_step_gives_each_state_with_the_q_values_the_action_came_from(small_agent):
    from mario_dqn.evaluation import evaluate

    config, agent = small_agent
    frames, views = [], []
    result = evaluate(agent, config, 2, seed=3, epsilon=0.4, noop_max=6, on_step=views.append,
                      on_frame=lambda episode, frame: frames.append((episode, frame)))
    plain = evaluate(agent, config, 2, seed=3, epsilon=0.4, noop_max=6)
    assert result == plain, "on_step must not change the results or the random draws"

    lengths = [row["length"] for row in result["per_episode"]]
    assert len(views) == len(frames) == sum(lengths) + 2  # every state: reset, then one per step
    assert [(v.episode, v.step) for v in views] == [(e, s) for e, n in enumerate(lengths) for s in range(n + 1)]
    assert all(v.frame is f for v, (_, f) in zip(views, frames)), "the same frames as on_frame"
    decided = [v for v in views if v.action is not None]
    assert [v.q_values is None for v in views].count(True) == 2  # the last state of each episode
    for v in decided:
        np.testing.assert_array_equal(v.q_values, agent.q_values(v.obs[None], policy=True)[0])
        if v.noop:
            assert v.action == 0 and not v.explored
        elif not v.explored:
            assert v.action == int(np.argmax(v.q_values)), "greedy actions are the argmax of these values"
    assert any(v.noop for v in decided) and any(v.explored for v in decided)
    assert all(v.explored for v in decided if not v.noop and v.action != int(np.argmax(v.q_values)))
    assert views[0].obs.shape == (84, 84, 4) and views[0].frame.shape == (240, 256, 3)
    # where each state stands in its episode: the last one's figures are the episode's result
    assert all(v.epsilon == 0.4 for v in views)
    assert [v.episode_return for v in views if v.step == 0] == [0.0, 0.0]
    assert all(v.x_pos > 0 for v in views)
    last = [v for v in views if v.action is None]
    assert [(v.x_pos, v.episode_return) for v in last] == [(r["x_pos"], r["return"]) for r in result["per_episode"]]


def bar_lengths(image: np.ndarray, num_actions: int) -> list[int]:
    """How many columns of each action's bar are drawn, read along its middle row."""
    lengths = []
    for a in range(num_actions):
        box = bar_box(a, num_actions)
        row = box.of(image)[box.height // 2].astype(int)
        lengths.append(int(np.sum(np.abs(row - np.array(BACKGROUND)).sum(axis=-1) > 60)))
    return lengths


def test_the_q_value_panel_of_a_recorded_explain_video_changes_over_an_episode(tmp_path):
    """The shipped agent's first 40 steps, written by ExplainVideos and read back from the
    mp4: its Q-values are not one picture repeated (a frozen panel would pass the tests
    that only count frames)."""
    import imageio.v2 as imageio

    from mario_dqn.checkpoint import load_policy, restore_policy
    from mario_dqn.environment import ACTIONS, action_meanings
    from mario_dqn.build import build_agent
    from mario_dqn.evaluation import evaluate

    policy = load_policy(PRETRAINED)
    config = C.apply_overrides(policy.config, ["max_episode_steps=40"])
    agent = build_agent(config, len(ACTIONS[config.env.action_set]))
    restore_policy(policy, agent)
    names = action_meanings(config.env)
    videos = explain.ExplainVideos(tmp_path, "shipped", 15, names)
    try:
        evaluate(agent, config, 1, seed=0, noop_max=0, on_step=videos.on_step)
    finally:
        videos.close()
    reader = imageio.get_reader(videos.paths[0])
    early, late = reader.get_data(1), reader.get_data(39)  # both decided states (the last one, 40, has no bars)
    reader.close()
    first, later = bar_lengths(early, len(names)), bar_lengths(late, len(names))
    assert min(first + later) > 0, (first, later)  # every bar is there in both
    assert max(abs(a - b) for a, b in zip(first, later)) >= 4, (first, later)


def test_play_record_explain_writes_one_explain_video_per_episode(tmp_path):
    """End to end: a tiny run, then `play --record --explain`; one frame per state, 1280x480."""
    run = tmp_path / "runs" / "tiny"
    trained = cli("train", "--steps", "20", "--envs", "1", "--save-dir", str(tmp_path / "runs"), "--name", "tiny",
                  "--no-progress", "--set", "max_episode_steps=15", "--set", "eval_every=0",
                  "--set", "network=small")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "any-stage" not in trained.stderr  # 1-1: the defaults are its recipe
    videos = tmp_path / "videos"
    out = cli("play", str(run), "--episodes", "2", "--epsilon", "0.2", "--record", "--explain",
              "--video-dir", str(videos))
    assert out.returncode == 0, out.stderr[-2000:]
    paths = sorted(videos.glob("*.mp4"))
    assert [p.name.split("-explain-")[1] for p in paths] == ["episode-000.mp4", "episode-001.mp4"]
    lines = [line for line in out.stdout.splitlines() if line.startswith("episode ")]
    assert len(lines) == 2 and all(str(p) in line for p, line in zip(paths, lines))

    from mario_dqn.checkpoint import load_checkpoint, restore_agent
    from mario_dqn.environment import ACTIONS
    from mario_dqn.build import build_agent
    from mario_dqn.evaluation import evaluate

    checkpoint = load_checkpoint(run)
    agent = build_agent(checkpoint.config, len(ACTIONS[checkpoint.config.env.action_set]))
    restore_agent(checkpoint, agent)
    expected = evaluate(agent, checkpoint.config, 2, seed=0, epsilon=0.2)["per_episode"]
    import imageio.v2 as imageio

    for path, episode in zip(paths, expected, strict=True):
        reader = imageio.get_reader(path)
        assert reader.count_frames() == episode["length"] + 1  # the reset state, then one per agent step
        assert reader.get_meta_data()["size"] == (WIDTH, HEIGHT)
        reader.close()


@pytest.mark.parametrize("args,message", [
    (["--explain"], "--explain only applies with --record"),
])
def test_explain_needs_record(args, message):
    out = cli("play", str(ROOT / "save" / "pretrained" / "world-1-1"), *args)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


def test_a_kept_model_plays_and_evaluates_like_the_checkpoint_it_was_kept_with(tmp_path):
    """`evaluate` and `play --record` take RUN/models/step-N.weights.h5 (the models the
    harness measures): its config from the run, its videos in the run's videos/."""
    run = tmp_path / "runs" / "tiny"
    trained = cli("train", "--steps", "20", "--envs", "1", "--save-dir", str(tmp_path / "runs"), "--name", "tiny",
                  "--no-progress", "--world", "2", "--stage", "1", "--set", "max_episode_steps=15",
                  "--set", "eval_every=0", "--set", "network=small")
    assert trained.returncode == 0, trained.stderr[-2000:]
    # a stage beyond World 1 without a preset: one note on stderr names the recipe
    assert trained.stderr.count("--preset any-stage") == 1 and "note: 2-1 with the defaults" in trained.stderr
    kept = run / "models" / "step-000000000020.weights.h5"
    assert kept.is_file()
    args = ("--episodes", "2", "--epsilon", "0.3", "--json")
    from_kept = cli("evaluate", str(kept), *args)
    from_run = cli("evaluate", str(run), *args)
    assert from_kept.returncode == 0 and from_run.returncode == 0, from_kept.stderr[-2000:] + from_run.stderr[-2000:]
    assert json.loads(from_kept.stdout)["per_episode"] == json.loads(from_run.stdout)["per_episode"]
    played = cli("play", str(kept), "--record")
    assert played.returncode == 0, played.stderr[-2000:]
    assert [p.name for p in (run / "videos").glob("*.mp4")] == ["step-000000000020-episode-000.mp4"]
    (run / "config.json").unlink()
    refused = cli("evaluate", str(kept))
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1 and "config.json is missing" in refused.stderr
