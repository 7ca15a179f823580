"""Policy distillation: the loss against hand-computed values, a student that learns a
teacher's choices, the teachers' compatibility, and the real `distill` command end to end
(the shipped agents teach; the student is an ordinary agent evaluate and play load)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import config as C
from mario_dqn.distill import (DistillError, DistillSettings, distillation_loss, fit, reproduce_command, round_score,
                               soft_targets, student_config)
from mario_dqn.checkpoint import model_source
from mario_dqn.evaluation import EVAL_SEED_OFFSET
from tests.processes import start, wait_for, wait_for_emulator

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "save" / "pretrained"


def test_soft_targets_by_hand():
    # Q (0, 0.01) at T = 0.01: softmax(0, 1) = (1, e) / (1 + e)
    got = soft_targets(np.array([[0.0, 0.01], [5.0, 5.0]]), 0.01)
    e = math.e
    np.testing.assert_allclose(got, [[1 / (1 + e), e / (1 + e)], [0.5, 0.5]], rtol=1e-6)
    # large Q-values do not overflow (the maximum is taken out first)
    np.testing.assert_allclose(soft_targets(np.array([[1000.0, 999.99]]), 0.01), [[e / (1 + e), 1 / (1 + e)]],
                               rtol=1e-5)


def test_distillation_loss_by_hand():
    import keras

    targets = np.array([[0.25, 0.75]], np.float32)
    q = np.array([[0.01, 0.0]], np.float32)  # logits at T = 0.01: (1, 0)
    log_z = math.log(math.e + 1)  # log softmax(1, 0) = (1 - log_z, -log_z)
    want = -(0.25 * (1 - log_z) + 0.75 * (-log_z))
    got = float(keras.ops.convert_to_numpy(distillation_loss(0.01)(targets, q))[0])
    assert got == pytest.approx(want, rel=1e-5)
    # at its minimum (the student's softmax equals the targets) the loss is the targets' entropy
    q_same = np.array([[0.0, 0.01 * math.log(3)]], np.float32)
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert float(keras.ops.convert_to_numpy(distillation_loss(0.01)(targets, q_same))[0]) == pytest.approx(
        entropy, rel=1e-4)


def test_a_student_learns_the_teachers_choices():
    """A teacher whose best action is which quarter of the picture is brightest: the
    student, trained on its Q-values only, picks the same action on nearly every state."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    states = rng.integers(0, 256, size=(2000, 8, 8, 1), dtype=np.uint8)
    quarters = np.stack([states[:, :4, :4].mean((1, 2, 3)), states[:, :4, 4:].mean((1, 2, 3)),
                         states[:, 4:, :4].mean((1, 2, 3)), states[:, 4:, 4:].mean((1, 2, 3))], axis=1)
    teacher_q = (quarters / 255.0).astype(np.float32)  # action gaps of ~0.01-0.1, as real Q-values have
    obs = keras.Input((8, 8, 1), dtype="uint8")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(obs))
    model = keras.Model(obs, keras.layers.Dense(4)(keras.layers.Dense(64, activation="relu")(x)))
    settings = DistillSettings(epochs=40, batch_size=64, learning_rate=3e-3, temperature=0.01)
    agree_before = (model.predict(states, verbose=0).argmax(1) == teacher_q.argmax(1)).mean()
    loss = fit(model, states, teacher_q, settings, keras.optimizers.Adam(settings.learning_rate))
    agree = (model(states).numpy().argmax(1) == teacher_q.argmax(1)).mean()
    assert agree_before < 0.5
    assert agree > 0.9, (agree, loss)


def test_student_config_merges_the_stages_and_refuses_teachers_that_disagree():
    one = C.apply_overrides(C.Config(), ["stages=1-1", "end_on_ceiling=false"])
    two = C.apply_overrides(C.Config(), ["stages=1-2", "noop_max=30", "end_on_ceiling=true"])
    config = student_config({"1-1": one, "1-2": two}, seed=5)
    assert config.env.stages == ("1-1", "1-2")
    assert config.env.end_on_ceiling and config.env.noop_max == 0 and config.runner.seed == 5
    other = C.apply_overrides(C.Config(), ["stages=1-2", "action_set=simple"])
    with pytest.raises(DistillError, match="env.action_set"):
        student_config({"1-1": one, "1-2": other}, seed=0)
    small = C.apply_overrides(C.Config(), ["stages=1-2", "network=small"])
    with pytest.raises(DistillError, match="agent.network"):
        student_config({"1-1": one, "1-2": small}, seed=0)
    # the student's own torso: the teachers' unless another is asked for (they must still agree)
    assert config.agent.network == "nature"
    assert student_config({"1-1": one, "1-2": two}, seed=5, network="wide").agent.network == "wide"
    with pytest.raises(DistillError, match="agent.network"):
        student_config({"1-1": one, "1-2": small}, seed=0, network="wide")


def _main(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)


@pytest.mark.parametrize("args, message", [
    (["--stages", "1-1"], "--stages: name at least two different stages"),
    (["--stages", "1-1,1-1"], "--stages: name at least two different stages"),
    (["--teacher", "1-2"], "expected W-S=PATH"),
    (["--teacher", "2-1=x"], "stage 2-1 is not one of --stages"),
    (["--teacher", "1-2=/nonexistent/run"], "no teacher for stage 1-2: /nonexistent/run does not exist"),
    (["--average-steps", "-1"], "error: Invalid value for '--average-steps': -1 is not in the range x>=0"),
    (["--average-warmup"], "error: average_warmup warms up the weight average: it needs average_steps > 0"),
    (["--network", "huge"], "error: Invalid value for '--network': 'huge' is not one of 'nature', 'small', 'wide'."),
])
def test_bad_options_are_one_line(tmp_path, args, message):
    result = _main("distill", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_an_existing_out_is_kept_without_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("kept")
    result = _main("distill", str(out))
    assert result.returncode == 2 and "exists; pass --force" in result.stderr
    assert (out / "mine.txt").read_text() == "kept"


def test_force_replaces_only_an_agent_directory(tmp_path):
    """--force deletes a tree: a directory that holds files but no model.keras, or a file,
    is refused before any distillation starts (one line, exit 2) and left as it was."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "mine.txt").write_text("kept")
    a_file = tmp_path / "a-file"
    a_file.write_text("kept")
    for out in (folder, a_file):
        result = _main("distill", str(out), "--force")
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "not an agent directory" in result.stderr, result.stderr
    assert (folder / "mine.txt").read_text() == "kept" and a_file.read_text() == "kept"


def test_distill_writes_an_agent_that_evaluate_plays_per_stage(tmp_path):
    """Stopped by Ctrl-C after round 1 and run again, it continues with round 2 (the
    equality with a distillation that ran through is tests/test_distill_rounds.py's)."""
    out = tmp_path / "student"
    args = ("distill", str(out), "--stages", "1-1,1-4", "--rounds", "2", "--episodes", "2", "--epochs", "1",
            "--eval-episodes", "1", "--no-progress")
    partial, each = tmp_path / "student.partial", tmp_path / "student.rounds"
    proc = start(*args, "--keep-rounds")
    wait_for(lambda: (partial / "progress.json").exists() or proc.poll() is not None, "round 1 to be kept")
    os.killpg(proc.pid, signal.SIGINT)  # as round 2's players start: the window that printed an OSError
    first, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == (f"stopped by SIGINT; {out} not written; round 1 kept in {partial}, "
                                            "the same command continues")
    assert "round 1/2, 1-4: teacher played 2 episodes (greedy flags 100%, with epsilon 0.05 " in first
    assert not out.exists()
    assert [p.name for p in each.iterdir()] == ["round-001"], "--keep-rounds writes each round as it finishes"
    result = _main(*args, "--keep-rounds")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"continuing after round 1/2 ({partial})\n"), result.stdout[:500]
    assert "round 2/2, 1-4: student played" in result.stdout and "round 1/2, " not in result.stdout
    assert not partial.exists(), "the kept rounds go once OUT is written"
    state = json.loads((out / "state.json").read_text())
    record = state["distilled"]
    # kept relative to the repository, so a shipped student's record reads the same on every clone
    assert record["teachers"] == {"1-1": "save/pretrained/world-1-1", "1-4": "save/pretrained/world-1-4"}
    # and by content and origin: the teacher's model file, its run and step (its training.json's)
    for stage, source in record["teacher_sources"].items():
        teacher = ROOT / record["teachers"][stage]
        shipped = json.loads((teacher / "training.json").read_text())
        assert source["model_sha256"] == hashlib.sha256((teacher / "model.keras").read_bytes()).hexdigest()
        assert (source["run"], source["checkpoint"], source["step"]) == (shipped["run"], shipped["checkpoint"],
                                                                         shipped["step"])
        assert source["path"] == record["teachers"][stage]
    first, second = record["rounds"]
    assert all(first["played"][s]["states"] > 0 for s in ("1-1", "1-4"))
    # the shipped teachers clear their stages greedily; the states of both rounds are trained on in the second
    assert first["played"]["1-1"]["greedy_flag_rate"] == 1.0 and first["played"]["1-4"]["greedy_flag_rate"] == 1.0
    # 2 episodes: 1 greedy, 1 with epsilon; the epsilon one's flag is the rest of the pooled rate
    for part in first["played"].values():
        assert part["epsilon_flag_rate"] in (0.0, 1.0)
        assert part["epsilon_flag_rate"] + part["greedy_flag_rate"] == 2 * part["flag_rate"]
    assert second["states"] == first["states"] + sum(p["states"] for p in second["played"].values())
    assert set(second["eval"]) == {"1-1", "1-4"}
    config = C.from_json((out / "config.json").read_text())
    assert config.env.stages == ("1-1", "1-4") and config.env.end_on_ceiling
    # the student written is the round that scored best (a later one on a tie), and it is
    # that round's network: it replays that round's evaluation episode (training's seed)
    scores = [round_score(row["eval"]) for row in record["rounds"]]
    assert record["kept_round"] == max(range(1, 3), key=lambda r: (scores[r - 1], r))
    kept = record["rounds"][record["kept_round"] - 1]["eval"]
    for stage in ("1-1", "1-4"):
        played = _main("evaluate", str(out), "--stage", stage, "--episodes", "1", "--seed", str(EVAL_SEED_OFFSET),
                       "--json")
        assert played.returncode == 0, played.stderr[-3000:]
        episode = json.loads(played.stdout)["per_episode"][0]
        assert episode["stage"] == stage and episode["x_pos"] == kept[stage]["mean_x_pos"]
    # --keep-rounds: every round's student, recorded as if it were the one kept, is that round's
    # network (round 1's replays round 1's evaluation episode, before and after the stop)
    assert sorted(p.name for p in each.iterdir()) == ["round-001", "round-002"]
    for r in (1, 2):
        each_record = json.loads((each / f"round-{r:03d}" / "state.json").read_text())["distilled"]
        assert each_record["kept_round"] == r and each_record["rounds"] == record["rounds"][:r]
        assert each_record["teacher_sources"] == record["teacher_sources"]
    played = _main("evaluate", str(each / "round-001"), "--stage", "1-4", "--episodes", "1", "--seed",
                   str(EVAL_SEED_OFFSET), "--json")
    assert played.returncode == 0, played.stderr[-3000:]
    assert json.loads(played.stdout)["per_episode"][0]["x_pos"] == record["rounds"][0]["eval"]["1-4"]["mean_x_pos"]


def test_keep_rounds_refuses_a_rounds_directory_in_the_way(tmp_path):
    """OUT.rounds of another distillation is kept without --force, and --force removes
    only rounds' students: a directory holding anything else is refused (one line, exit 2)."""
    each = tmp_path / "out.rounds"
    (each / "round-001").mkdir(parents=True)
    (each / "round-001" / "model.keras").write_text("a student")
    result = _main("distill", str(tmp_path / "out"), "--keep-rounds")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"{each} exists; pass --force" in result.stderr
    (each / "notes.txt").write_text("mine")
    result = _main("distill", str(tmp_path / "out"), "--keep-rounds", "--force")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "holds more than rounds' students" in result.stderr
    assert (each / "notes.txt").read_text() == "mine" and (each / "round-001" / "model.keras").is_file()


def test_ctrl_c_stops_distill_without_writing(tmp_path):
    out = tmp_path / "student"
    proc = start("distill", str(out), "--stages", "1-1,1-4", "--episodes", "1000", "--no-progress")
    wait_for_emulator(proc, "the first teacher's episodes")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == f"stopped by SIGINT; {out} not written"
    assert not out.exists()


def test_played_states_are_the_agents_choices_with_its_q_values():
    """Round one labels the states with the Q-values the teacher acted on (no second
    pass): they must be its policy network's, one row per step it chose, no-ops left out."""
    from mario_dqn import checkpoint as ckpt
    from mario_dqn.distill import label, play_states
    from mario_dqn.environment import ACTIONS
    from mario_dqn.build import build_agent

    policy = ckpt.load_policy(SHIPPED / "world-1-4")
    agent = build_agent(policy.config, len(ACTIONS[policy.config.env.action_set]))
    ckpt.restore_policy(policy, agent)
    config = C.replace(policy.config, {"env": {"max_episode_steps": 40}})
    states, q, rows = play_states(agent, config, episodes=1, seed=3, epsilon=0.0)
    noops = int(np.random.default_rng(3).integers(31))
    assert len(states) == len(q) == rows[0]["length"] - noops > 0
    np.testing.assert_allclose(q, label(agent, states), rtol=1e-5, atol=1e-6)

    # worker processes play the same episodes as this one (each depends only on its seeds)
    from mario_dqn.distill import PlayJob, play_all

    jobs = [PlayJob(C.to_json(config), agent.policy.get_weights(), 1, seed, epsilon)
            for seed, epsilon in ((3, 0.0), (4, 0.5))]
    alone, pooled = play_all(jobs, workers=1), play_all(jobs, workers=2)
    np.testing.assert_array_equal(alone[0][0], states)
    for (obs_a, q_a, rows_a), (obs_b, q_b, rows_b) in zip(alone, pooled):
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_allclose(q_a, q_b, rtol=1e-5, atol=1e-6)
        assert rows_a == rows_b
    assert len(alone[1][0]) != len(alone[0][0]) or not np.array_equal(alone[1][0], alone[0][0])


def test_workers_get_the_weights_by_file_once_per_player(tmp_path):
    """A job reaches its worker through a pipe: its weights go by file, so what is sent
    is small (a write into the pipe never waits for a worker), and each player's weights
    are written once however many jobs it has."""
    import pickle

    from mario_dqn.checkpoint import load_arrays
    from mario_dqn.distill import PlayJob, _weights_by_file

    rng = np.random.default_rng(0)
    first = [rng.normal(size=(512, 512)).astype(np.float32), rng.normal(size=(7,)).astype(np.float32)]
    second = [array + 1 for array in first]
    jobs = [PlayJob("{}", weights, 1, seed, 0.0) for seed, weights in enumerate((first, first, second))]
    sent = _weights_by_file(jobs, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    assert sent[0].weights == sent[1].weights != sent[2].weights
    for job, weights in zip(sent, (first, first, second)):
        assert len(pickle.dumps(job)) < 4096 < sum(array.nbytes for array in weights)
        assert (job.config_json, job.episodes, job.epsilon) == ("{}", 1, 0.0)
        for read, array in zip(load_arrays(Path(job.weights)), weights, strict=True):
            np.testing.assert_array_equal(read, array)
    assert [job.seed for job in sent] == [0, 1, 2]


def test_a_stop_while_the_workers_start_leaves_no_pool_behind(tmp_path):
    """A stop that lands while the players are still starting (the window a Ctrl-C hit
    in distill) ends them, and no pool thread, process or weights file outlives the
    call: a pool thread still closing its pipes at exit printed an OSError."""
    import concurrent.futures.process as cfp
    import glob
    import multiprocessing
    import tempfile
    import threading

    from mario_dqn.distill import DistillStopped, PlayJob, play_all

    def pool_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if isinstance(t, cfp._ExecutorManagerThread)}

    def folders() -> set[str]:
        return set(glob.glob(os.path.join(tempfile.gettempdir(), "mario-dqn-players-*")))

    # what other tests in this process may have left is not this call's
    before = (pool_threads(), set(multiprocessing.active_children()), folders())
    weights = [np.zeros((1024, 1024), np.float32) for _ in range(4)]  # 16 MB: more than a pipe holds
    jobs = [PlayJob("{}", weights, 1, seed, 0.0) for seed in range(6)]
    with pytest.raises(DistillStopped):
        play_all(jobs, workers=2, stop=lambda: True)
    assert pool_threads() <= before[0]
    assert set(multiprocessing.active_children()) <= before[1]
    assert folders() == before[2]


PLAYERS_SCRIPT = """
import config as C
from mario_dqn.build import build_agent
from mario_dqn.distill import PlayJob, play_all
from mario_dqn.environment import ACTIONS

config = C.replace(C.Config(), {"env": {"stages": ("1-1",)}})
agent = build_agent(config, len(ACTIONS[config.env.action_set]))
play_all([PlayJob(C.to_json(config), agent.policy.get_weights(), 200, seed, 0.0) for seed in (0, 1)], workers=2)
"""


def test_a_distillation_killed_alone_leaves_no_player_playing():
    """`kill -9` of a distillation must take its players with it (distill's pool
    initializer calls mario_dqn.signals.exit_with_parent), as the harness's test checks
    for its worker."""
    from tests.processes import check_killed_alone_takes_its_workers

    check_killed_alone_takes_its_workers(["-c", PLAYERS_SCRIPT], 2, "the two players")


def test_balancing_weights_by_hand():
    from mario_dqn.distill import balancing_weights

    # 3 states of stage 0 and 1 of stage 1: 4 / (2 * 3) and 4 / (2 * 1); each stage sums to 2
    np.testing.assert_allclose(balancing_weights(np.array([0, 0, 1, 0])), [2 / 3, 2 / 3, 2.0, 2 / 3])
    np.testing.assert_allclose(balancing_weights(np.array([5, 5])), [1.0, 1.0])


def test_a_weight_of_zero_leaves_a_state_untaught():
    """fit's weights reach the gradient: states weighted 0 teach nothing, so a student
    trained only on the others' labels does not learn the zero-weighted ones' choice."""
    import keras

    keras.utils.set_random_seed(1)
    states = np.concatenate([np.zeros((64, 2, 2, 1), np.uint8), np.full((64, 2, 2, 1), 255, np.uint8)])
    teacher_q = np.zeros((128, 2), np.float32)
    teacher_q[:, 1] = 0.1  # action 1 everywhere ...
    obs = keras.Input((2, 2, 1), dtype="uint8")
    model = keras.Model(obs, keras.layers.Dense(2, use_bias=False)(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(obs))))
    model.set_weights([np.array([[0.5, -0.5]] * 4, np.float32)])  # ... but the student starts with action 0
    settings = DistillSettings(epochs=50, batch_size=32, learning_rate=1e-2)
    weights = np.concatenate([np.ones(64), np.zeros(64)]).astype(np.float32)  # the bright states weigh 0
    fit(model, states, teacher_q, settings, keras.optimizers.Adam(1e-2), weights=weights)
    # with no bias, the black states give no gradient either: nothing moves
    np.testing.assert_allclose(model.get_weights()[0], [[0.5, -0.5]] * 4)
    fit(model, states, teacher_q, settings, keras.optimizers.Adam(1e-2))
    assert model(states[64:]).numpy().argmax(1).tolist() == [1] * 64


def test_the_commands_defaults_are_the_settings_defaults():
    """``distill --help`` shows what a run without options does: DistillSettings' values."""
    import main

    options = {param.name: param.default for param in main.distill.params}
    defaults = DistillSettings()
    for name in ("rounds", "episodes", "epochs", "epsilon", "temperature", "learning_rate", "eval_episodes",
                 "seed", "workers", "average_steps", "average_warmup"):
        assert options[name] == getattr(defaults, name), name


def test_round_score_ranks_the_worst_stage_first():
    def evaluation(*pairs):
        return {f"1-{i + 1}": {"flag_rate": rate, "mean_x_pos": x} for i, (rate, x) in enumerate(pairs)}

    # (min rate, mean rate, mean x) by hand
    assert round_score(evaluation((1.0, 3000), (0.2, 1000))) == (0.2, 0.6, 2000.0)
    even, lopsided = evaluation((0.6, 2000), (0.6, 2000)), evaluation((1.0, 3000), (0.4, 2500))
    assert round_score(even) > round_score(lopsided)  # 60/60 beats 100/40: every stage counts
    assert round_score(evaluation((0.6, 2000), (0.8, 100))) > round_score(even)  # then the mean rate
    assert round_score(evaluation((0.6, 2100), (0.6, 2000))) > round_score(even)  # then x_pos


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_teacher_is_recorded_by_content_run_and_step(tmp_path):
    """A run's checkpoint names its run and checkpoint by its place; a run directory
    resolves to its newest complete checkpoint; a shipped agent names the run its
    training.json gives; the checksum is of the model file's bytes."""
    checkpoint = tmp_path / "w12n-s0" / "checkpoints" / "step-000000350000"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.keras").write_bytes(b"the weights of step 350k")
    (checkpoint / "state.json").write_text(json.dumps({"format_version": 1, "step": 350000, "agent": {}}))
    (checkpoint / "COMPLETE").write_text("ok\n")
    want = {"path": "runs/w12n-s0", "model_sha256": _sha256(b"the weights of step 350k"), "run": "w12n-s0",
            "checkpoint": "checkpoints/step-000000350000", "step": 350000}
    assert model_source(tmp_path / "w12n-s0", "runs/w12n-s0") == want
    assert model_source(checkpoint)["path"] == str(checkpoint)
    (checkpoint / "model.keras").write_bytes(b"other weights")
    assert model_source(checkpoint)["model_sha256"] == _sha256(b"other weights")
    shipped = model_source(SHIPPED / "world-1-4", "save/pretrained/world-1-4")
    info = json.loads((SHIPPED / "world-1-4" / "training.json").read_text())
    assert shipped == {"path": "save/pretrained/world-1-4",
                       "model_sha256": _sha256((SHIPPED / "world-1-4" / "model.keras").read_bytes()),
                       "run": info["run"], "checkpoint": info["checkpoint"], "step": info["step"],
                       "training_wall_hours": info["training_wall_hours"]}


def _parsed(command: str) -> dict:
    """The distill command's options as click parses ``command`` (a reproduce line)."""
    import shlex

    import main

    words = shlex.split(command)
    assert words[:3] == ["python", "main.py", "distill"], command
    return main.distill.make_context("distill", words[3:]).params


def test_the_reproduce_command_gives_the_record_s_stages_teachers_and_settings():
    record = {"teachers": {"1-1": "save/pretrained/world-1-1", "1-2": "save/pretrained/world-1-2"},
              "settings": {**dataclasses.asdict(DistillSettings()), "epochs": 6, "learning_rate": 1e-4, "seed": 3}}
    params = _parsed(reproduce_command("save/runs/again", record, {"1-2": "old-1-2"}))
    assert str(params["out"]) == "save/runs/again" and params["stages"] == "1-1,1-2"
    assert params["teachers"] == ("1-1=save/pretrained/world-1-1", "1-2=old-1-2")
    for name, value in record["settings"].items():
        if name != "batch_size":  # the command has no option for it (the default is recorded)
            assert params[name] == value, name


def test_the_shipped_world_1_agent_records_the_teachers_it_was_distilled_from():
    """save/pretrained/world-1 was distilled from the four per-stage agents shipped beside
    it: its record names each by checksum, run and step, and its reproduce line is one
    distill command whose options are the recorded settings (--average-steps, and
    --average-warmup where it was on, among them)."""
    state = json.loads((SHIPPED / "world-1" / "state.json").read_text())["distilled"]
    training = json.loads((SHIPPED / "world-1" / "training.json").read_text())
    sources = state["teacher_sources"]
    assert training["teachers"] == sources and list(sources) == ["1-1", "1-2", "1-3", "1-4"]
    for stage in ("1-1", "1-2", "1-3", "1-4"):
        teacher = SHIPPED / f"world-{stage}"
        assert sources[stage]["model_sha256"] == _sha256((teacher / "model.keras").read_bytes()), stage
        shipped = json.loads((teacher / "training.json").read_text())
        assert (sources[stage]["run"], sources[stage]["step"]) == (shipped["run"], shipped["step"]), stage
    command = training["reproduce"]
    assert isinstance(command, str) and command.startswith("python main.py distill ")
    params = _parsed(command)
    assert params["stages"] == "1-1,1-2,1-3,1-4"
    assert all(f"{stage}=save/pretrained/world-{stage}" in params["teachers"] for stage in sources)
    assert state["settings"]["average_steps"] > 0
    for name, value in state["settings"].items():
        if name != "batch_size":
            assert params[name] == value, name
    assert state["settings"]["batch_size"] == DistillSettings().batch_size


def _tiny_model(keras):
    """A 2x2 picture to 2 Q-values through one dense layer, with fixed weights."""
    obs = keras.Input((2, 2, 1), dtype="uint8")
    model = keras.Model(obs, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(obs))))
    model.set_weights([np.array([[0.5, -0.5], [0.1, 0.2], [-0.3, 0.3], [0.0, 0.4]], np.float32),
                       np.array([0.05, -0.05], np.float32)])
    return model


def _tiny_data():
    rng = np.random.default_rng(7)
    states = rng.integers(0, 256, size=(6, 2, 2, 1), dtype=np.uint8)
    teacher_q = rng.normal(0.0, 0.05, size=(6, 2)).astype(np.float32)
    return states, teacher_q


def test_the_weight_average_by_hand():
    """With average_steps N the average is the weights after the first step, then moves
    1/N of the way to the weights after each later one; the model keeps its own weights."""
    import keras

    from mario_dqn.distill import averaged_weights, student_optimizer

    model = _tiny_model(keras)
    states, teacher_q = _tiny_data()
    settings = DistillSettings(epochs=1, batch_size=2, learning_rate=1e-2, average_steps=4)  # 3 steps
    optimizer = student_optimizer(settings)
    after: list[list[np.ndarray]] = []
    fit(model, states, teacher_q, settings, optimizer, on_batch=lambda: after.append(model.get_weights()))
    assert len(after) == 3
    average = [np.float64(w) for w in after[0]]
    for weights in after[1:]:
        average = [0.75 * a + 0.25 * w for a, w in zip(average, weights)]
    got = averaged_weights(model, optimizer)
    for mine, want, last in zip(got, average, after[-1]):
        np.testing.assert_allclose(mine, want, rtol=1e-6, atol=1e-7)
        assert not np.allclose(mine, last, rtol=0, atol=1e-6)  # it is no copy of the last weights
    for own, last in zip(model.get_weights(), after[-1]):
        np.testing.assert_array_equal(own, last)  # reading the average left the model's weights alone
    # one step of horizon 1 is a copy of the weights
    one = _tiny_model(keras)
    settings_1 = dataclasses.replace(settings, average_steps=1)
    optimizer_1 = student_optimizer(settings_1)
    fit(one, states, teacher_q, settings_1, optimizer_1)
    for mine, own in zip(averaged_weights(one, optimizer_1), one.get_weights()):
        np.testing.assert_array_equal(mine, own)


def test_warmup_momentum_by_hand():
    """0 at the first step, then (1 + n) / (10 + n) until that passes the momentum."""
    from mario_dqn.distill import warmup_momentum

    assert warmup_momentum(0, 0.9995) == 0.0
    assert warmup_momentum(1, 0.9995) == pytest.approx(2 / 11)
    assert warmup_momentum(90, 0.9995) == pytest.approx(0.91)
    assert warmup_momentum(2000, 0.9995) == pytest.approx(2001 / 2010)
    assert warmup_momentum(17_991, 0.9995) == pytest.approx(0.9995)  # (1 + n) / (10 + n) = 0.9995 there
    assert warmup_momentum(10**6, 0.9995) == 0.9995
    assert warmup_momentum(1, 0.1) == 0.1  # a short horizon is never exceeded


def test_the_warmed_up_average_by_hand():
    """With average_warmup the optimizer's average after steps 0, 1, 2 is the weights
    after step 0, then moves with warmup_momentum(n) (2/11, then 3/12) where the plain
    average of N = 4 would move with 0.75: a different average, the same training."""
    import keras

    from mario_dqn.distill import averaged_weights, student_optimizer, warmup_momentum

    states, teacher_q = _tiny_data()
    settings = DistillSettings(epochs=1, batch_size=2, learning_rate=1e-2, average_steps=4, average_warmup=True)
    model = _tiny_model(keras)
    optimizer = student_optimizer(settings)
    after: list[list[np.ndarray]] = []
    fit(model, states, teacher_q, settings, optimizer, on_batch=lambda: after.append(model.get_weights()))
    assert len(after) == 3
    average = [np.float64(w) for w in after[0]]
    for n, weights in enumerate(after[1:], start=1):
        m = warmup_momentum(n, 0.75)
        average = [m * a + (1 - m) * w for a, w in zip(average, weights)]
    got = averaged_weights(model, optimizer)
    for mine, want in zip(got, average):
        np.testing.assert_allclose(mine, want, rtol=1e-6, atol=1e-7)
    plain = _tiny_model(keras)
    plain_optimizer = student_optimizer(dataclasses.replace(settings, average_warmup=False))
    fit(plain, states, teacher_q, settings, plain_optimizer)
    for mine, trained in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(mine, trained)  # the warm-up changes no training
    assert not np.allclose(got[0], averaged_weights(plain, plain_optimizer)[0], rtol=0, atol=1e-6)


def test_the_average_changes_no_training_and_0_trains_as_before():
    """average_steps 0 gives the optimizer distill used before the option (Adam at the
    learning rate, no average), so fit's weights are those of then bit for bit; and
    keeping an average leaves the trained weights bit for bit the same too."""
    import keras

    from mario_dqn.distill import student_optimizer

    states, teacher_q = _tiny_data()
    settings = DistillSettings(epochs=2, batch_size=2, learning_rate=1e-2, seed=3)
    trained = {}
    for name, optimizer in (("before", keras.optimizers.Adam(learning_rate=settings.learning_rate)),
                            ("off", student_optimizer(settings)),
                            ("average", student_optimizer(dataclasses.replace(settings, average_steps=3)))):
        model = _tiny_model(keras)
        loss = fit(model, states, teacher_q, settings, optimizer)
        trained[name] = (loss, model.get_weights())
    assert not student_optimizer(settings).use_ema
    for name in ("off", "average"):
        assert trained[name][0] == trained["before"][0], name
        for mine, before in zip(trained[name][1], trained["before"][1]):
            np.testing.assert_array_equal(mine, before)
    assert not np.array_equal(trained["before"][1][0], _tiny_model(keras).get_weights()[0])  # it did train


def test_a_negative_average_is_refused():
    with pytest.raises(DistillError, match="average_steps must be >= 0"):
        DistillSettings(average_steps=-1)
    with pytest.raises(DistillError, match="needs average_steps > 0"):
        DistillSettings(average_warmup=True)


def test_the_average_reaches_the_record_and_the_reproduce_command():
    """The record names average_steps only when it is on (a distillation without it
    records what it did before the option), and the reproduce line gives it back."""
    from mario_dqn.distill import recorded_settings

    plain = recorded_settings(DistillSettings())
    assert "average_steps" not in plain
    assert plain == {k: v for k, v in dataclasses.asdict(DistillSettings()).items()
                     if k not in ("average_steps", "average_warmup", "network")}
    teachers = {"1-1": "save/pretrained/world-1-1", "1-2": "save/pretrained/world-1-2"}
    line = reproduce_command("save/runs/again", {"teachers": teachers, "settings": plain})
    assert "--average-steps" not in line and _parsed(line)["average_steps"] == 0
    assert "--average-warmup" not in line and _parsed(line)["average_warmup"] is False
    assert "--network" not in line and _parsed(line)["network"] is None
    averaged = recorded_settings(DistillSettings(average_steps=500, seed=2))
    assert averaged["average_steps"] == 500 and "average_warmup" not in averaged
    params = _parsed(reproduce_command("save/runs/again", {"teachers": teachers, "settings": averaged}))
    for name, value in averaged.items():
        if name != "batch_size":
            assert params[name] == value, name
    assert params["average_warmup"] is False
    warmed = recorded_settings(DistillSettings(average_steps=500, average_warmup=True))
    assert warmed["average_warmup"] is True
    params = _parsed(reproduce_command("save/runs/again", {"teachers": teachers, "settings": warmed}))
    for name, value in warmed.items():
        if name != "batch_size":
            assert params[name] == value, name
    wide = recorded_settings(DistillSettings(network="wide"))
    assert wide["network"] == "wide" and _parsed(reproduce_command("again", {"teachers": teachers,
                                                                              "settings": wide}))["network"] == "wide"
    with pytest.raises(DistillError, match="network must be one of nature, small, wide"):
        DistillSettings(network="huge")


class _FakeTeacher:
    """A teacher without an emulator or a network of its torso: its Q-values are a fixed
    function of the state's mean pixel, so every stage's labels are known."""

    def __init__(self, actions: int) -> None:
        import keras

        self.actions = actions
        self.policy = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    def q_values(self, states: np.ndarray, policy: bool = False) -> np.ndarray:
        means = states.reshape(len(states), -1).mean(1, keepdims=True) / 255.0
        return (means * np.linspace(-0.05, 0.05, self.actions)).astype(np.float32)


def test_the_student_plays_and_is_written_as_the_average_while_training_goes_on(monkeypatch):
    """distill with the emulator faked (every round's episodes give the same states,
    whoever plays): the losses are those of a distillation without the average, round by
    round (training goes on from the trained weights, not from their average), while the
    student that plays round 2 and the one returned are the average."""
    from mario_dqn import distill as D
    from mario_dqn.environment import ACTIONS

    configs = {stage: C.apply_overrides(C.Config(), [f"stages={stage}", "network=small"]) for stage in ("1-1", "1-2")}
    actions = len(ACTIONS[configs["1-1"].env.action_set])

    played: list[tuple[int, list[np.ndarray]]] = []

    def play_all(jobs, workers, stop=None):
        results = []
        for job in jobs:
            played.append((job.seed, job.weights))
            rng = np.random.default_rng(job.seed)
            obs = rng.integers(0, 256, size=(4 * job.episodes, 84, 84, 4), dtype=np.uint8)
            results.append((obs, teacher.q_values(obs), [{"flag": False}] * job.episodes))
        return results

    def evaluate_each_stage(student, config, episodes, seed, stop=None):
        return {"per_stage": {stage: {"flag_rate": 0.0, "mean_x_pos": 40.0} for stage in config.env.stages}}

    monkeypatch.setattr(D, "play_all", play_all)
    monkeypatch.setattr(D, "evaluate_each_stage", evaluate_each_stage)
    teacher = _FakeTeacher(actions)
    teachers = {stage: (config, teacher) for stage, config in configs.items()}
    runs = {}
    for average_steps in (0, 3):
        played.clear()
        settings = DistillSettings(rounds=2, episodes=2, epochs=2, batch_size=8, eval_episodes=1, workers=1,
                                   average_steps=average_steps)
        student, _, record = D.distill(teachers, settings, log=lambda line: None)
        round_2 = [weights for seed, weights in played if seed >= D.COLLECT_SEED + 10_000]
        runs[average_steps] = (student, record, round_2)
    (plain, plain_record, plain_round_2), (averaged, record, round_2) = runs[0], runs[3]
    assert [row["loss"] for row in record["rounds"]] == [row["loss"] for row in plain_record["rounds"]]
    assert record["settings"]["average_steps"] == 3 and "average_steps" not in plain_record["settings"]
    assert record["kept_round"] == plain_record["kept_round"] == 2  # a tie: the later round
    # round 2 was played by the average of round 1: not the plain student's round-1 weights
    assert not np.array_equal(round_2[0][0], plain_round_2[0][0])
    # the student returned is the average: every network of it, and not the trained weights
    for network in (averaged.online, averaged.policy):
        assert not np.array_equal(network.get_weights()[0], plain.online.get_weights()[0])
        np.testing.assert_array_equal(network.get_weights()[0], averaged.policy.get_weights()[0])


def test_a_wide_student_is_taught_by_teachers_playing_round_1_with_their_own_torso(monkeypatch):
    """distill --network wide with the emulator faked: round 1's episodes are played by the
    teachers with their torso (small here), later rounds by the student with its own, and
    the student returned is wide."""
    from mario_dqn import distill as D
    from mario_dqn.environment import ACTIONS

    configs = {stage: C.apply_overrides(C.Config(), [f"stages={stage}", "network=small"]) for stage in ("1-1", "1-2")}
    teacher = _FakeTeacher(len(ACTIONS[configs["1-1"].env.action_set]))
    players: list[tuple[int, str]] = []

    def play_all(jobs, workers, stop=None):
        results = []
        for job in jobs:
            players.append((job.seed, C.from_json(job.config_json).agent.network))
            obs = np.random.default_rng(job.seed).integers(0, 256, size=(4, 84, 84, 4), dtype=np.uint8)
            results.append((obs, teacher.q_values(obs), [{"flag": False}] * job.episodes))
        return results

    monkeypatch.setattr(D, "play_all", play_all)
    settings = DistillSettings(rounds=2, episodes=1, epochs=1, batch_size=8, eval_episodes=0, workers=1,
                               network="wide")
    student, config, record = D.distill({s: (c, teacher) for s, c in configs.items()}, settings, log=lambda _: None)
    assert [net for seed, net in players if seed < D.COLLECT_SEED + 10_000] == ["small", "small"]
    assert [net for seed, net in players if seed >= D.COLLECT_SEED + 10_000] == ["wide", "wide"]
    assert config.agent.network == "wide" and record["settings"]["network"] == "wide"
    assert student.policy.get_layer("hidden").units == 1024


def test_keep_rounds_with_force_removes_only_rounds_students_and_a_continuation_keeps_them(tmp_path):
    from mario_dqn.distill import check_rounds_out

    each = tmp_path / "out.rounds"
    for r in (1, 2):
        (each / f"round-00{r}").mkdir(parents=True)
        (each / f"round-00{r}" / "model.keras").write_text("a student")
    check_rounds_out(each, continuing=True, force=False)  # the same distillation writes on into it
    assert sorted(p.name for p in each.iterdir()) == ["round-001", "round-002"]
    check_rounds_out(each, continuing=False, force=True)
    assert not each.exists()
    check_rounds_out(each, continuing=False, force=False)  # nothing in the way
