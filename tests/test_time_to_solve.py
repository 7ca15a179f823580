"""The time-to-solve harness's summary, against hand-made rows (no training needed).

That the run keeps one model per checkpoint with its wall seconds, and that these
load back into an agent, is tested on real runs in tests/test_runner.py
(test_kept_models_and_the_wall_clock_survive_a_resume).
"""

from __future__ import annotations

from mario_dqn.time_to_solve import cache_key, first_training_flag, summarize


def _row(step: int, minutes: float, flag_rate: float) -> dict:
    return {"step": step, "wall_s": minutes * 60, "flag_rate": flag_rate, "mean_x_pos": 1000.0}


def test_summary_reads_first_marks_and_the_stability_window() -> None:
    rows = [_row(25_000, 10, 0.0), _row(50_000, 20, 0.55), _row(75_000, 30, 0.85), _row(100_000, 40, 0.65),
            _row(125_000, 50, 0.9), _row(150_000, 61, 0.2)]
    lines = summarize(rows, (30_000, 12 * 60.0))
    assert lines == [
        "first training flag: step 30,000, 0.20 h",
        ">= 50% flags: step 50,000, 0.33 h",
        ">= 80% flags: step 75,000, 0.50 h",
        # the window is (30, 60] minutes: 40 and 50 are in it, 61 is not
        "lowest flag rate in the 30 min after it: 65% (step 100,000; 2 models)",
    ]


def test_summary_of_a_run_that_has_not_got_there() -> None:
    lines = summarize([_row(25_000, 10, 0.0), _row(50_000, 20, 0.3)], None)
    assert lines == ["first training flag: not yet", ">= 50% flags: not yet (best 30%)",
                     ">= 80% flags: not yet (best 30%)"]


def test_first_training_flag_comes_from_the_episode_rows(tmp_path) -> None:
    (tmp_path / "metrics.csv").write_text(
        "kind,step,episode,flag,wall_s\n"
        "episode,100,1,0,5.0\n"
        "eval,200,1,,9.0\n"  # an evaluation row is not a training flag
        "episode,300,2,1,12.5\n"
        "episode,400,3,1,20.0\n")
    assert first_training_flag(tmp_path) == (300, 12.5)
    (tmp_path / "metrics.csv").write_text("kind,step,episode,flag\nepisode,300,2,1\n")  # before wall_s existed
    assert first_training_flag(tmp_path) == (300, None)
    assert first_training_flag(tmp_path / "nowhere") is None


def test_first_training_flag_of_one_stage_of_several(tmp_path) -> None:
    (tmp_path / "metrics.csv").write_text(
        "kind,step,episode,flag,wall_s,stage\n"
        "episode,100,1,1,5.0,1-4\n"
        "episode,300,2,0,12.5,1-1\n"
        "episode,400,3,1,20.0,1-1\n")
    assert first_training_flag(tmp_path) == (100, 5.0)
    assert first_training_flag(tmp_path, "1-1") == (400, 20.0)
    assert first_training_flag(tmp_path, "1-3") is None


def test_cache_keys_keep_one_stage_runs_and_split_several() -> None:
    # a one-stage run measured on its own stage keeps the key of caches written before stages were measured
    assert cache_key(0, 20, 0.0, "1-1", ("1-1",)) == "seed=0,episodes=20,epsilon=0.0"
    assert cache_key(0, 20, 0.0, "1-2", ("1-1",)) == "seed=0,episodes=20,epsilon=0.0,stage=1-2"
    keys = {cache_key(1000, 20, 0.0, stage, ("1-1", "1-3")) for stage in ("1-1", "1-3")}
    assert keys == {"seed=1000,episodes=20,epsilon=0.0,stage=1-1", "seed=1000,episodes=20,epsilon=0.0,stage=1-3"}


def test_a_flag_from_a_restarted_episode_is_not_a_first_flag(tmp_path) -> None:
    (tmp_path / "metrics.csv").write_text(
        "kind,step,episode,flag,wall_s,stage,restart_steps\n"
        "episode,100,1,1,5.0,1-3,57\n"  # began 57 replayed steps into the stage
        "episode,300,2,1,12.5,1-3,0\n")
    assert first_training_flag(tmp_path) == (300, 12.5)


def test_a_harness_killed_alone_leaves_no_worker_evaluating(tmp_path) -> None:
    """`kill` of the harness alone must take its worker with it; a pool worker would
    otherwise play the rest of its model's episodes (here 200 with a random network,
    minutes) beside whatever the machine does next."""
    import config as C
    from mario_dqn import checkpoint as ckpt
    from mario_dqn.build import build_agent
    from mario_dqn.environment import ACTIONS
    from tests.processes import check_killed_alone_takes_its_workers

    config = C.replace(C.Config(), {"env": {"stages": ("1-1",)}})
    (tmp_path / "config.json").write_text(C.to_json(config))
    agent = build_agent(config, len(ACTIONS[config.env.action_set]))
    ckpt.keep_model(tmp_path / "models", 100, agent, {"step": 100, "wall_s": 1.0})
    check_killed_alone_takes_its_workers(["-m", "mario_dqn.time_to_solve", str(tmp_path), "--episodes", "200",
                                          "--quiet"], 1, "the harness's worker")
