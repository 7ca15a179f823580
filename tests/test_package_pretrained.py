"""scripts/package_pretrained.py's own arithmetic, against hand-made run records (no
training: the shipped agent's files themselves are checked in tests/test_pretrained.py)."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("package_pretrained", ROOT / "scripts" / "package_pretrained.py")
package = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(package)


def _run(tmp_path: Path, stages: list[str]) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "config.json").write_text(json.dumps({"env": {"stages": stages}}))
    return run


def test_the_default_destination_follows_the_run_s_stages(tmp_path):
    shipped = ROOT / "save" / "pretrained"
    assert package.default_out(_run(tmp_path, ["1-3"])) == shipped / "world-1-3"
    assert package.default_out(_run(tmp_path, ["1-1", "1-2", "1-3", "1-4"])) == shipped / "world-1"
    # several worlds: worlds-A-B, from the lowest world to the highest (issue 40's worlds-1-4)
    assert package.default_out(_run(tmp_path, ["1-1", "1-3", "2-3", "4-1", "3-4"])) == shipped / "worlds-1-4"
    assert package.agent_name(["2-1", "3-1"]) == "worlds-2-3"


def test_the_evaluations_run_jobs_at_a_time_and_keep_their_order(monkeypatch):
    """30 evaluate processes for a nine-stage agent: two run at once, each result under its
    own key, in the order given (the fake's results carry their arguments; a barrier of two
    is passed only when two calls are inside at the same time)."""
    barrier = threading.Barrier(2, timeout=30)
    inside, most = [0], [0]
    lock = threading.Lock()

    def fake_summary(out, seed, epsilon, stage=None):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        barrier.wait()
        with lock:
            inside[0] -= 1
        return {"seed": seed, "epsilon": epsilon, "stage": stage}

    monkeypatch.setattr(package, "evaluate_summary", fake_summary)
    protocols = {**package.ROBUSTNESS, **package.stage_protocols(["1-1", "2-3", "4-1"])}
    assert len(protocols) == 3 + 3 * 3
    measured = package.evaluate_all(Path("agent"), protocols, jobs=2)
    assert list(measured) == list(protocols) and most[0] == 2
    assert measured[("2-3", "epsilon_0.05_held_out")] == {"seed": 1000, "epsilon": 0.05, "stage": "2-3"}
    stages = package.per_stage({key: value for key, value in measured.items() if key not in package.ROBUSTNESS})
    assert list(stages) == ["1-1", "2-3", "4-1"]
    assert list(stages["4-1"]) == ["seeds_0_19", "other_seeds_greedy", "epsilon_0.05_held_out"]
    assert stages["4-1"]["seeds_0_19"] == {"seed": 0, "epsilon": 0.0, "stage": "4-1"}


def _episode(step: int, flag: int, wall_s: str, sps: str = "50.0") -> dict[str, str]:
    return {"kind": "episode", "step": str(step), "episode": str(step // 100), "flag": str(flag),
            "steps_per_s": sps, "wall_s": wall_s, "x_pos": "900", "return": "90", "stage": "1-1"}


def test_hours_come_from_wall_s_and_from_steps_per_s_before_it_existed(tmp_path):
    rows = [_episode(1000, 0, "100"), {"kind": "eval", "step": "1000", "wall_s": "120", "stage": "", "x_pos": "700", "return": "70", "flag": ""},
            _episode(2000, 1, "1800"), _episode(3000, 1, "7200")]
    assert package.first_flag(rows) == {"step": 2000, "episode": 20, "wall_hours": 0.5}
    assert package.training_hours(rows) == 2.0
    assert package.flags_from_stage_start(rows) == 2
    restarted = rows + [{**_episode(4000, 1, "7300"), "restart_steps": "250"},
                        {**_episode(5000, 1, "7400"), "restart_steps": "0"}]
    assert package.flags_from_stage_start(restarted) == 3  # the one restarted 250 steps in does not count
    old = [{k: v for k, v in row.items() if k != "wall_s"} for row in rows if row["kind"] == "episode"]
    # 1000 steps at 50/s, then 1000 more, then 1000 more: 60 s in all
    assert package.first_flag(old)["wall_hours"] == round(40 / 3600, 2)
    assert package.training_hours(old) == round(60 / 3600, 2)
    path = tmp_path / "curve.png"
    package.plot_curve(rows, path, ["1-1"])
    assert path.stat().st_size > 10_000


def test_a_run_over_several_stages_is_drawn_per_stage(tmp_path):
    """Each stage gets its own training episodes from the stage start and its own evaluation
    rows; the pooled evaluation row (no stage) and restarted episodes are left out."""
    rows = [_episode(100, 0, "10"), {**_episode(200, 0, "20"), "stage": "1-3", "x_pos": "700"},
            {**_episode(300, 1, "30"), "stage": "1-3", "x_pos": "2425", "restart_steps": "400"},
            {"kind": "eval", "step": "500", "stage": "", "flag_rate": "0.5", "x_pos": "1000"},
            {"kind": "eval", "step": "500", "stage": "1-1", "flag_rate": "0.8", "x_pos": "3000"},
            {"kind": "eval", "step": "500", "stage": "1-3", "flag_rate": "0.2", "x_pos": "800"}]
    series = package.stage_series(rows, ["1-1", "1-3"])
    assert series["1-1"] == {"step": [100], "x_pos": [900.0], "eval_step": [500], "eval_flag_rate": [0.8]}
    assert series["1-3"] == {"step": [200], "x_pos": [700.0], "eval_step": [500], "eval_flag_rate": [0.2]}
    assert list(package._smooth([1.0, 2.0, 3.0, 5.0], 3)) == [2.0, pytest.approx(10 / 3)]
    assert list(package._trailing_mean([0.0, 0.6, 0.3, 0.9], 3)) == pytest.approx([0.0, 0.3, 0.3, 0.6])
    many = [{**_episode(100 * i, 0, str(i)), "stage": stage} for i in range(1, 121) for stage in ("1-1", "1-3")]
    many += [{"kind": "eval", "step": str(1000 * i), "stage": stage, "flag_rate": "0.4", "x_pos": "1"}
             for i in range(1, 6) for stage in ("1-1", "1-3")]
    path = tmp_path / "curve.png"
    package.plot_curve(many, path, ["1-1", "1-3"])
    assert path.stat().st_size > 10_000


def test_a_distilled_agent_is_recognised_and_its_hours_summed(tmp_path):
    teacher = tmp_path / "teacher-1-1"
    teacher.mkdir()
    (teacher / "training.json").write_text(json.dumps({"training_wall_hours": 1.26}))
    record = {"teachers": {"1-1": str(teacher), "1-2": str(tmp_path / "a-run-dir")}, "wall_s": 1800.0,
              "settings": {"epsilon": 0.05, "episodes": 30, "eval_episodes": 5},
              "rounds": [{"round": r, "states": 1000 * r, "played": {s: {"flag_rate": 0.5, "states": 1000}
                                                                      for s in ("1-1", "1-2")},
                          "eval": {"1-1": {"flag_rate": 0.2 * r}, "1-2": {"flag_rate": 0.1 * r}}}
                         for r in (1, 2)]}
    student = tmp_path / "student"
    student.mkdir()
    assert package.distilled_record(student) is None  # no state.json: not an agent
    (student / "COMPLETE").write_text("ok\n")
    (student / "state.json").write_text(json.dumps({"step": 0, "agent": {}, "distilled": record}))
    assert package.distilled_record(student) == record
    run = _run(tmp_path, ["1-1"])
    assert package.distilled_record(run) is None  # a run directory has no state.json of its own
    training = package.distilled_training(record)
    assert training["teacher_training_wall_hours"] == {"1-1": 1.26, "1-2": None}
    assert training["distillation_wall_hours"] == 0.5 and training["rounds"] == 2 and training["states"] == 2000
    assert training["kept_round"] == 2  # a record from before rounds were kept: the last
    kept_first = package.distilled_training({**record, "kept_round": 1})
    assert kept_first["kept_round"] == 1 and kept_first["states"] == 1000  # what the kept round was trained on
    path = tmp_path / "curve.png"
    package.plot_distill_curve(record, path)
    assert path.stat().st_size > 1000


def test_a_distilled_agent_s_teachers_are_shipped_by_content_and_hours_follow_the_checksum(tmp_path):
    """training.json carries each teacher's recorded source; a teacher's hours are the
    record's, and a teacher path whose model file changed since (re-shipped) lends none."""
    import hashlib

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "model.keras").write_bytes(b"the teacher that taught")
    (teacher / "training.json").write_text(json.dumps({"training_wall_hours": 0.91}))
    sha = hashlib.sha256(b"the teacher that taught").hexdigest()
    assert package.sha256_file(teacher / "model.keras") == sha
    source = {"path": str(teacher), "model_sha256": sha, "run": "w12n-s0", "checkpoint": "models/step-1",
              "step": 1}
    record = {"teachers": {"1-2": str(teacher)}, "teacher_sources": {"1-2": source}, "wall_s": 36.0,
              "settings": {}, "rounds": [{"round": 1, "states": 10}]}
    training = package.distilled_training(record)
    assert training["teachers"] == {"1-2": source} and training["teacher_training_wall_hours"] == {"1-2": 0.91}
    (teacher / "model.keras").write_bytes(b"another agent shipped at the same path")
    assert package.distilled_training(record)["teacher_training_wall_hours"] == {"1-2": None}
    recorded = {**record, "teacher_sources": {"1-2": {**source, "training_wall_hours": 0.5}}}
    assert package.distilled_training(recorded)["teacher_training_wall_hours"] == {"1-2": 0.5}


def test_the_80_percent_step_is_recorded_with_the_hours_to_it():
    """--solved-step: the wall hours are those of the last training episode that ended by
    that step (a kept model's step falls between episodes), as first_flag reads them."""
    rows = [_episode(1000, 0, "360"), _episode(2000, 1, "1800"), _episode(3000, 1, "7200")]
    assert package.hours_at_step(rows, 2500) == 0.5
    assert package.hours_at_step(rows, 3000) == 2.0
    assert package.hours_at_step(rows, 500) == 0.0
    assert package.solved_at(rows, "w21-s0", 2500) == {"step": 2500, "wall_hours": 0.5,
                                                       "source": "w21-s0, time-to-solve harness"}


def test_a_run_that_started_over_carries_the_attempt_before_it(tmp_path):
    """What the trainer writes when a castle maze's loop starts a run over (run_dir.start_over)
    is what training.json records, so the stage table can count the attempt's steps."""
    import config as C
    from mario_dqn import run_dir as RD

    run = tmp_path / "over"
    run.mkdir()
    assert package.started_over(run) is None
    config = C.apply_overrides(C.Config(), ["stages=4-4", "loop_action_set=simple"])
    RD.start_over(run, config, "simple", 664, 11.34)
    assert package.started_over(run) == {"action_set_before": "right_only", "action_set": "simple",
                                         "steps_before": 664, "wall_s_before": 11.3,
                                         "why": "a castle maze looped Mario back for a wrong route "
                                                "(env.loop_action_set)"}
    assert C.from_json((run / "config.json").read_text()).env.action_set == "simple"


def test_a_stage_outside_world_1_draws_its_flag_where_its_training_flags_ended(tmp_path):
    """FLAGPOLE_X knows World 1; another stage's line is its lowest training flag's x_pos,
    and a stage with no flag yet is drawn without one."""
    rows = [{**_episode(1000, 0, "10"), "stage": "2-1", "x_pos": "1500"},
            {**_episode(2000, 1, "20"), "stage": "2-1", "x_pos": "3300"},
            {**_episode(3000, 1, "30"), "stage": "2-1", "x_pos": "3290"},
            {**_episode(3000, 1, "30"), "stage": "2-2", "x_pos": "9999"}]
    assert package.flag_x(rows, "1-3") == 2425
    assert package.flag_x(rows, "2-1") == 3290
    assert package.flag_x(rows[:1], "2-1") is None
    for stages, some in ((["2-1"], rows), (["2-3"], rows[:1]), (["2-1", "2-2"], rows)):
        path = tmp_path / "curve.png"
        package.plot_curve(some, path, stages)
        assert path.stat().st_size > 10_000


def test_only_world_1_ships_the_mp4_and_explain_gif_unless_asked():
    assert package.wants_extras(["1-3"], None) and package.wants_extras(["1-1", "1-2", "1-3", "1-4"], None)
    assert not package.wants_extras(["3-2"], None) and not package.wants_extras(["2-1", "2-2"], None)
    assert package.wants_extras(["3-2"], True) and not package.wants_extras(["1-1"], False)


def test_robustness_measures_epsilon_on_the_held_out_seeds():
    """Issue 38's epsilon bar is on seeds 1000-1019: README's stage table reads this check."""
    assert package.ROBUSTNESS["epsilon_0.05_held_out"] == (package.HELD_OUT_SEED, 0.05) == (1000, 0.05)
    assert package.ROBUSTNESS["epsilon_0.05"] == (0, 0.05)


def test_a_failed_evaluation_starts_none_of_those_still_queued(monkeypatch):
    """One process at a time, the first fails: the worker may have taken the next one by
    the time the failure is seen (each takes 0.5 s here), none after it; without the cancel
    all nine would run."""
    calls = []

    def failing_summary(out, seed, epsilon, stage=None):
        calls.append((stage, seed, epsilon))
        if len(calls) > 1:
            time.sleep(0.5)
        raise package.subprocess.CalledProcessError(1, ["evaluate"])

    monkeypatch.setattr(package, "evaluate_summary", failing_summary)
    with pytest.raises(package.subprocess.CalledProcessError):
        package.evaluate_all(Path("agent"), package.stage_protocols(["1-1", "2-3", "4-1"]), jobs=1)
    assert calls[0] == ("1-1", 0, 0.0) and len(calls) <= 2


def test_a_distilled_agent_refuses_the_options_of_a_trained_run(tmp_path, monkeypatch, capsys):
    """--solved-step/--reproduce describe a training run; a distilled agent records its own
    `distill` command, so they are refused in one line before anything is replaced."""
    student = tmp_path / "student"
    student.mkdir()
    (student / "COMPLETE").write_text("ok\n")
    (student / "state.json").write_text(json.dumps({"step": 0, "distilled": {"teachers": {}}}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("shipped before")
    monkeypatch.setattr(package.sys, "argv", ["package_pretrained.py", str(student), "--out", str(out),
                                              "--solved-step", "1000"])
    assert package.main() == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert (out / "keep").read_text() == "shipped before"


def test_the_recorded_play_line_names_the_kept_video_not_a_temporary_one(tmp_path):
    """play_to_gif plays the agent through the CLI; its record must not name the temporary
    directory the video was written to (gone when packaging ends)."""
    import shutil

    agent = tmp_path / "agent"
    shutil.copytree(ROOT / "save" / "pretrained" / "world-1-1", agent,
                    ignore=shutil.ignore_patterns("*.gif", "*.mp4", "*.png"))
    line = package.play_to_gif(agent, 0, "short.gif", seconds=0.5, mp4="short.mp4")
    assert line.startswith("episode 0: stage 1-1") and line.endswith(" video short.mp4"), line
    assert (agent / "short.gif").stat().st_size > 0 and (agent / "short.mp4").stat().st_size > 0
    line = package.play_to_gif(agent, 0, "only.gif", seconds=0.5)
    assert line.endswith(" video only.gif") and "/tmp" not in line, line
