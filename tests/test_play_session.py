"""The play session and the shipped-agent lookup, without a model: what a stopped session
says, where recordings go, and which shipped agent a stage gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from mario_dqn import shipped
from mario_dqn.errors import UserInputError
from mario_dqn.evaluation import EpisodeRow, evaluation_result
from mario_dqn.play_session import Played, episode_line, sinks, summary_lines


def test_a_stopped_session_says_what_finished_and_where_the_cut_video_is():
    rows = (EpisodeRow(300.5, 318, 3161, True, "1-1"),)
    videos = (Path("v/episode-000.mp4"), Path("v/episode-001.mp4"))
    played = Played(rows, videos, requested=3, stopped_by="SIGINT")
    assert played.stopped
    assert played.stop_line() == ("stopped by SIGINT during episode 1 (1 of 3 finished); "
                                  "its video up to there: v/episode-001.mp4")
    closed = Played(rows, (), requested=3)
    assert closed.stop_line() == "window closed during episode 1 (1 of 3 finished)"
    assert episode_line(0, rows[0], videos[0]) == ("episode 0: stage 1-1 return 300.50 x_pos 3161 flag yes "
                                                   "video v/episode-000.mp4")
    done = Played(rows, (), 1, evaluation_result(list(rows)))
    assert not done.stopped


def test_summary_lines_give_each_stage_only_when_there_are_several():
    one = evaluation_result([EpisodeRow(10.0, 5, 400, False, "1-1")])
    assert summary_lines(one) == ["mean return 10.00, mean x_pos 400, max x_pos 400, flag rate 0%"]
    two = evaluation_result([EpisodeRow(10.0, 5, 400, False, "1-1"), EpisodeRow(20.0, 6, 800, True, "1-2")])
    lines = summary_lines(two)
    assert lines[0].startswith("stage 1-1: 1 episodes") and lines[1].startswith("stage 1-2: 1 episodes")
    assert lines[2].endswith("flag rate 50%")


def test_the_window_and_the_recorder_both_get_every_frame():
    got = []

    class Sink:
        def __init__(self, name):
            self.name = name

        def on_frame(self, episode, frame):
            got.append((self.name, episode, frame))

    on_frame, on_step = sinks(Sink("video"), Sink("window"))
    on_frame(0, "f")
    assert sorted(got) == [("video", 0, "f"), ("window", 0, "f")] and on_step is None
    assert sinks(None, None) == (None, None)


def test_a_stage_gets_its_own_shipped_agent_else_its_worlds(monkeypatch, tmp_path):
    (tmp_path / "world-1-1").mkdir()
    (tmp_path / "world-2").mkdir()
    monkeypatch.setattr(shipped, "SHIPPED", tmp_path)
    monkeypatch.setattr(shipped, "PRETRAINED", tmp_path / "world-1-1")
    assert shipped.shipped_agent() == tmp_path / "world-1-1"
    assert shipped.shipped_agent("1-1") == tmp_path / "world-1-1"
    assert shipped.shipped_agent("2-3") == tmp_path / "world-2"
    with pytest.raises(UserInputError, match="no shipped agent for stage 3-1"):
        shipped.shipped_agent("3-1")
    with pytest.raises(UserInputError, match="no teacher for stage 1-2"):
        shipped.teacher_paths(["1-1", "1-2"], {})
    assert shipped.teacher_paths(["1-1"], {}) == {"1-1": tmp_path / "world-1-1"}


def test_records_name_paths_in_the_repository_relative_to_it(tmp_path):
    assert shipped.shown(shipped.SHIPPED / "world-1-2") == "save/pretrained/world-1-2"
    assert shipped.shown(tmp_path / "x") == str(tmp_path / "x")
    assert shipped.SHIPPED.is_dir() and (shipped.PRETRAINED / "model.keras").is_file()
