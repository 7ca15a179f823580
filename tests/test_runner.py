"""Runner, checkpoints and CLI: exact resume across processes, refusals, one-line errors.

Tiny configs keep each training run to a few hundred agent steps of real Mario.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from benchmarks import fault_injection
from tests.processes import concurrently

ROOT = Path(__file__).resolve().parent.parent
TINY = [*fault_injection.TINY, "--set", "policy_average_steps=0"]
"""Tiny runs; without the policy average, so that a checkpoint can be rewritten the way the
code before it wrote them (as_old_format). The average has its own resume test."""


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python main.py ARGS` in a fresh process, as a user would. The timeout only ends a
    hung run; it is long because fixtures run up to five of these at once on two cores."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def metrics_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for clock in WALL_CLOCK:
            row.pop(clock)
    return rows


WALL_CLOCK = ("steps_per_s", "wall_s")
"""The columns (and the state.json field) that read the clock: the ones allowed to differ."""


def exact_state(state: dict) -> dict:
    """A checkpoint's state.json without its wall-clock seconds."""
    return {key: value for key, value in state.items() if key not in WALL_CLOCK}


def tensorboard_scalars(run: Path) -> list[tuple[str, int, float]]:
    """Every scalar in a run's TensorBoard event files as sorted (tag, step, value),
    wall-clock steps/s left out (as in :func:`metrics_rows`)."""
    import tensorflow as tf

    scalars = []
    for file in sorted((run / "tensorboard").glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(file)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars", value.tag
                if not value.tag.endswith("/steps_per_s"):
                    scalars.append((value.tag, event.step, float(tf.make_ndarray(value.tensor))))
    return sorted(scalars)


def npz(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def crash_after(run: Path, crashed: Path, straight: Path, step: int) -> Path:
    """A copy of ``run`` (stopped with a checkpoint at ``step``) as a process killed later
    would leave it: ``straight``'s rows after ``step`` (what the killed process wrote, since
    runs are deterministic) appended to metrics.csv and to the TensorBoard events."""
    import tensorflow as tf

    from mario_dqn.metrics_log import METRIC_FIELDS, write_scalars

    shutil.copytree(run, crashed)
    with open(straight / "metrics.csv", newline="") as handle:
        tail = [row for row in csv.DictReader(handle) if int(row["step"]) > step]
    assert tail, "the straight run must have logged after the checkpoint"
    with open(crashed / "metrics.csv", "a", newline="") as handle:
        csv.DictWriter(handle, METRIC_FIELDS).writerows(tail)
    writer = tf.summary.create_file_writer(str(crashed / "tensorboard"), filename_suffix=".killed")
    for row in tail:
        write_scalars(writer, row)
    writer.close()
    return crashed


def as_old_format(run: Path, copy: Path) -> Path:
    """A copy of ``run`` whose newest checkpoint is as the code before 2026-11-28 wrote it:
    no online.npz (the weights only in model.keras), the dueling head as the custom
    DuelingCombine layer, and no wall_s or eval_pending in state.json."""
    import keras

    from mario_dqn.checkpoint import latest_checkpoint
    from mario_dqn.network import DuelingCombine

    shutil.copytree(run, copy)
    newest = latest_checkpoint(copy / "checkpoints")
    model = keras.saving.load_model(newest / "model.keras")
    value, advantage = model.get_layer("value").output, model.get_layer("advantage").output
    old = keras.Model(model.input, DuelingCombine(name="q")([value, advantage]), name=model.name)
    old.save(newest / "model.keras")
    (newest / "online.npz").unlink()
    state = json.loads((newest / "state.json").read_text())
    for key in ("wall_s", "eval_pending"):
        del state[key]
    (newest / "state.json").write_text(json.dumps(state))
    return copy


RETIRED_AT_NEUTRAL = {"munchausen_alpha": 0.0, "munchausen_tau": 0.03, "munchausen_clip": -1.0,
                      "augment_shift": 0, "epsilon_per_env_base": 0.0, "epsilon_per_env_alpha": 7.0}
"""The agent fields retired in issue 37, at the values every config.json of the time held."""


def with_retired_fields(run: Path, copy: Path) -> Path:
    """A copy of ``run`` as the code before issue 37 wrote it: every config.json with the
    retired fields at their neutral values, the newest state.json with the retired DrQ
    shift's generator (``augment_rng``, seeded [seed, 1], never drawn from at shift 0)."""
    from mario_dqn.checkpoint import latest_checkpoint

    shutil.copytree(run, copy)
    for path in [copy / "config.json", *(copy / "checkpoints").glob("*/config.json")]:
        config = json.loads(path.read_text())
        config["agent"].update(RETIRED_AT_NEUTRAL)
        path.write_text(json.dumps(config, indent=2, sort_keys=True))
    state_path = latest_checkpoint(copy / "checkpoints") / "state.json"
    state = json.loads(state_path.read_text())
    seed = json.loads((copy / "config.json").read_text())["runner"]["seed"]
    state["agent"]["augment_rng"] = np.random.default_rng([seed, 1]).bit_generator.state
    state_path.write_text(json.dumps(state))
    return copy


def assert_same_checkpoints(a: Path, b: Path):
    """Two checkpoints hold bitwise the same training state (wall-clock seconds aside);
    returns the first, loaded."""
    from mario_dqn.checkpoint import load_checkpoint

    assert (a / "average.npz").is_file() == (b / "average.npz").is_file()
    for name in ("online.npz", "target.npz", "optimizer.npz", "average.npz"):
        if not (a / name).is_file():
            continue
        for x, y in zip(npz(a / name), npz(b / name), strict=True):
            np.testing.assert_array_equal(x, y)
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert exact_state(ca.state) == exact_state(cb.state)
    return ca


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """For 1 and 4 envs (4 is the default; 2 envs resume exactly in the restart tests): a
    straight 300-step run, and one stopped at 150 (152 for 4 envs, whose steps come in
    fours) then resumed to 300 in new processes.
    Checkpoints every 100 steps, keeping 2. For 1 env also "crashed1": like resumed1, but
    killed after logging past its checkpoint (see crash_after). The runs that do not
    depend on each other train at once (:func:`concurrently`): 4, then 5 processes."""
    root = tmp_path_factory.mktemp("runs")
    paths: dict[str, Path] = {"root": root}

    def train(*args: str) -> Callable[[], subprocess.CompletedProcess]:
        return lambda: cli("train", *args)

    def common(envs: str) -> tuple[str, ...]:
        # 4 envs take 75 steps each: shorter episodes so that several end, after learning starts.
        shorter = ("--set", "max_episode_steps=30") if envs == "4" else ()
        return ("--envs", envs, "--set", "checkpoint_every=100", "--set", "keep_checkpoints=2", *TINY, *shorter)

    firsts = concurrently(*(train("--steps", steps, "--save-dir", str(root), "--name", f"{kind}{envs}", *common(envs))
                            for envs in ("1", "4") for kind, steps in (("straight", "300"), ("resumed", "150"))))
    for done in firsts:
        assert done.returncode == 0, done.stderr[-2000:]
    # copies of resumed1 as it stopped, before it is resumed itself
    paths["crashed1"] = crash_after(root / "resumed1", root / "crashed1", root / "straight1", 150)
    paths["oldformat1"] = as_old_format(root / "resumed1", root / "oldformat1")
    paths["retired1"] = with_retired_fields(root / "resumed1", root / "retired1")
    resumes = concurrently(*(train("--resume", str(root / name), "--steps", "300", "--no-progress")
                             for name in ("crashed1", "oldformat1", "retired1", "resumed1", "resumed4")))
    for done in resumes:
        assert done.returncode == 0, done.stderr[-2000:]
    (root / "crashed1.stderr").write_text(resumes[0].stderr)
    for second in resumes[3:]:
        assert "resuming" in second.stdout
    for envs in ("1", "4"):
        paths[f"straight{envs}"] = root / f"straight{envs}"
        paths[f"resumed{envs}"] = root / f"resumed{envs}"
    paths["straight"] = paths["straight1"]
    return paths


def test_run_layout(runs):
    run = runs["straight"]
    for name in ("config.json", "metrics.csv", "checkpoints", "videos", "tensorboard"):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    config = json.loads((run / "config.json").read_text())
    assert config["runner"]["total_steps"] == 300 and config["replay"]["capacity"] == 1000
    kept = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    assert kept == ["step-000000000200", "step-000000000300"], "keep_checkpoints=2 keeps the newest two"
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-000000000300"
    assert (run / "checkpoints" / "step-000000000300" / "replay").is_dir()
    assert not (run / "checkpoints" / "step-000000000200" / "replay").exists(), "replay only in the latest"
    assert (run / "checkpoints" / "step-000000000300" / "COMPLETE").is_file()


@pytest.mark.parametrize("envs", ["1", "4"])
def test_resume_gives_the_same_numbers_as_not_stopping(runs, envs):
    a = runs[f"straight{envs}"] / "checkpoints" / "step-000000000300"
    b = runs[f"resumed{envs}"] / "checkpoints" / "step-000000000300"
    rows_a, rows_b = metrics_rows(runs[f"straight{envs}"]), metrics_rows(runs[f"resumed{envs}"])
    assert len(rows_a) >= 2 and any(r["loss"] not in ("", "nan") for r in rows_a), "learning must have started"
    assert rows_a == rows_b
    assert tensorboard_scalars(runs[f"straight{envs}"]) == tensorboard_scalars(runs[f"resumed{envs}"])
    ca = assert_same_checkpoints(a, b)
    for file in sorted((a / "replay").glob("*.npy")):
        np.testing.assert_array_equal(np.load(file), np.load(b / "replay" / file.name))
    # and the update counter moved: the comparison is not between two untrained agents
    # learning overlaps the env step, so the last update is due at step 299: (299 - 100) // 4
    assert ca.state["agent"]["updates"] == (300 - 1 - 100) // 4


def test_kept_models_and_the_wall_clock_survive_a_resume(runs):
    from mario_dqn.checkpoint import kept_models, load_checkpoint
    from mario_dqn.environment import ACTIONS
    from mario_dqn.build import build_agent

    run = runs["resumed1"]
    models = kept_models(run)
    # 100 and 150 from the first process (150: where it stopped), 200 and 300 after the resume
    assert [info["step"] for _, info in models] == [100, 150, 200, 300]
    checkpoint = load_checkpoint(run)
    agent = build_agent(checkpoint.config, len(ACTIONS[checkpoint.config.env.action_set]))
    agent.load_weights_file(models[-1][0])
    policy = checkpoint.training.average or checkpoint.training.online  # a kept model is the policy
    for x, y in zip(agent.online.get_weights(), policy, strict=True):
        np.testing.assert_array_equal(x, y)
    walls = [info["wall_s"] for _, info in models]
    assert walls == sorted(walls) and walls[0] > 0 and checkpoint.state["wall_s"] == walls[-1]
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    row_walls = [float(row["wall_s"]) for row in rows]
    assert row_walls == sorted(row_walls), "wall seconds keep counting across the resume"
    after = [float(row["wall_s"]) for row in rows if int(row["step"]) > 150]
    assert after and min(after) > walls[1], "the resumed process starts from the stopped one's seconds"


def test_a_checkpoint_of_the_old_format_resumes_exactly(runs):
    """Runs started before the checkpoint format gained online.npz, the stock-layer
    dueling head and the newer counters resume to the numbers of a run never stopped."""
    run = runs["oldformat1"]
    assert metrics_rows(run) == metrics_rows(runs["straight1"])
    newest = run / "checkpoints" / "step-000000000300"
    assert (newest / "online.npz").is_file(), "saved again in today's format"
    ca = assert_same_checkpoints(runs["straight1"] / "checkpoints" / "step-000000000300", newest)
    assert ca.state["agent"]["updates"] > 0


def test_a_run_written_before_fields_were_retired_resumes_exactly(runs):
    """A run whose config.json and checkpoint hold the fields retired in issue 37 (at the
    neutral values every such run had) resumes to the numbers of a run never stopped."""
    run = runs["retired1"]
    assert json.loads((run / "config.json").read_text())["agent"]["munchausen_alpha"] == 0.0, "written the old way"
    assert metrics_rows(run) == metrics_rows(runs["straight1"])
    newest = run / "checkpoints" / "step-000000000300"
    ca = assert_same_checkpoints(runs["straight1"] / "checkpoints" / "step-000000000300", newest)
    assert ca.state["agent"]["updates"] > 0 and "augment_rng" not in ca.state["agent"]


def test_tensorboard_shows_each_row_once_after_resuming_from_an_older_checkpoint(runs):
    """Rows written after the checkpoint a run resumes from are written again; metrics.csv
    drops them first, and the event files must not keep the first copies either."""
    crashed, straight = runs["crashed1"], runs["straight1"]
    rows = metrics_rows(crashed)
    assert any(int(r["step"]) > 150 for r in rows), "the re-written span must hold rows"
    assert rows == metrics_rows(straight)
    scalars = tensorboard_scalars(crashed)
    assert len(scalars) > len(rows), "several scalars per row"
    assert scalars == tensorboard_scalars(straight)
    assert len({(tag, step) for tag, step, _ in scalars}) == len(scalars), "no (tag, step) twice"
    assert sorted(p.name for p in crashed.iterdir() if p.name.startswith("tensorboard")) == ["tensorboard"]
    # One trace writes every tag: TensorFlow warns on stderr when a function retraces per tag.
    assert "retracing" not in (runs["root"] / "crashed1.stderr").read_text()


def test_checkpoint_restores_weights_optimizer_and_q_values(runs):
    from config import Config
    from mario_dqn.checkpoint import load_checkpoint, restore_agent
    from mario_dqn.environment import ACTIONS
    from mario_dqn.build import build_agent

    checkpoint = load_checkpoint(runs["straight"])
    agent = build_agent(checkpoint.config, len(ACTIONS[checkpoint.config.env.action_set]))
    fresh_q = agent.q_values(np.full((2, 84, 84, 4), 77, np.uint8))
    restore_agent(checkpoint, agent)
    for variable, saved in zip(agent.optimizer.variables, checkpoint.training.optimizer, strict=True):
        np.testing.assert_array_equal(np.asarray(variable), saved)
    assert int(np.asarray(agent.optimizer.iterations)) == checkpoint.state["agent"]["updates"]
    obs = np.random.default_rng(0).integers(0, 255, (4, 84, 84, 4), dtype=np.uint8)
    import keras

    model = keras.saving.load_model(checkpoint.path / "model.keras", compile=False)  # the policy
    np.testing.assert_array_equal(np.asarray(agent.policy(obs, training=False)), np.asarray(model(obs)))
    # q_values runs the XLA-compiled forward pass, whose fused arithmetic rounds differently.
    np.testing.assert_allclose(agent.q_values(obs, policy=True), np.asarray(model(obs)), rtol=1e-5)
    assert not np.allclose(agent.q_values(obs[:2] * 0 + 77), fresh_q)
    assert isinstance(checkpoint.config, Config)


def test_partial_checkpoints_are_refused(runs, tmp_path):
    import shutil

    from mario_dqn.checkpoint import CheckpointError, load_checkpoint

    source = runs["straight"] / "checkpoints" / "step-000000000300"
    no_marker = tmp_path / "no-marker"
    shutil.copytree(source, no_marker)
    (no_marker / "COMPLETE").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(no_marker)
    truncated = tmp_path / "truncated"
    shutil.copytree(source, truncated)
    data = (truncated / "model.keras").read_bytes()
    (truncated / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.keras"):
        load_checkpoint(truncated)
    missing = tmp_path / "missing"
    shutil.copytree(source, missing)
    (missing / "optimizer.npz").unlink()
    with pytest.raises(CheckpointError, match="optimizer.npz is missing"):
        load_checkpoint(missing)


def _assert_plays_like_its_checkpoint(shipped: Path, source: Path):
    """The shipped policy's weights equal the complete checkpoint's policy (its weight
    average when it keeps one, else its online weights), and both play the same
    evaluation episode through the CLI; returns the loaded policy."""
    from mario_dqn.checkpoint import load_checkpoint, load_policy

    policy, full = load_policy(shipped), load_checkpoint(source)
    want_weights = full.training.average or full.training.online
    assert len(policy.online) == len(want_weights)
    for got, want in zip(policy.online, want_weights, strict=True):
        np.testing.assert_array_equal(got, want)
    played, want = concurrently(lambda: _evaluated(shipped), lambda: _evaluated(source))
    assert played == want
    return policy


_EPISODES: dict[Path, list] = {}
"""Episodes `evaluate PATH --episodes 1` played, by path: checkpoints of the module's runs
are never changed, so each is played once for the tests that compare with it."""


def _evaluated(path: Path) -> list:
    if path not in _EPISODES:
        out = cli("evaluate", str(path), "--episodes", "1", "--json")
        assert out.returncode == 0, out.stderr[-2000:]
        _EPISODES[path] = json.loads(out.stdout)["per_episode"]
    return _EPISODES[path]


def test_a_policy_loads_without_target_optimizer_and_online_npz(runs, tmp_path):
    """What a shipped agent holds (model.keras, state.json, config.json, COMPLETE) is
    enough to act: load_policy reads the online weights from model.keras, equal to the
    checkpoint's online.npz, and `evaluate` through the CLI gives the same episode as the
    full checkpoint. A missing model is named."""
    import shutil

    from mario_dqn.checkpoint import CheckpointError, load_policy

    source = runs["straight"] / "checkpoints" / "step-000000000300"
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("model.keras", "state.json", "config.json", "COMPLETE"):
        shutil.copy2(source / name, shipped / name)
    mismatched = tmp_path / "mismatched"  # the same files, its config naming the other network
    shutil.copytree(shipped, mismatched)
    config = json.loads((mismatched / "config.json").read_text())
    config["agent"]["network"] = "small" if config["agent"]["network"] == "nature" else "nature"
    (mismatched / "config.json").write_text(json.dumps(config))
    _, out = concurrently(lambda: _assert_plays_like_its_checkpoint(shipped, source),
                          lambda: cli("evaluate", str(mismatched), "--episodes", "1"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr[-2000:]
    assert f"{mismatched / 'model.keras'} does not match the model built from its config" in out.stderr
    (mismatched / "model.keras").unlink()
    with pytest.raises(CheckpointError, match="model.keras is missing"):
        load_policy(mismatched)


def test_a_run_started_from_an_agent_begins_with_its_policy_and_records_it(runs, tmp_path):
    """train --init-from: every network of the new run starts with the source's policy
    weights (no update happens before learning_starts, so the run's checkpoint still holds
    them), the step and counters start at 0, and init_from.json names the source's model by
    checksum. A source built with another network, or --init-from beside --resume, is
    refused in one line before any run directory is made."""
    from mario_dqn.checkpoint import load_checkpoint, load_policy, sha256_file

    source = runs["straight"] / "checkpoints" / "step-000000000300"
    network = load_checkpoint(source).config.agent.network
    other = "small" if network == "nature" else "nature"
    started, mismatched, resumed = concurrently(
        lambda: cli("train", "--init-from", str(source), "--steps", "100", "--save-dir", str(tmp_path),
                    "--name", "tuned", "--set", "checkpoint_every=100", *TINY),
        lambda: cli("train", "--init-from", str(source), "--steps", "100", "--save-dir", str(tmp_path),
                    "--name", "other", "--set", f"network={other}", *TINY),
        lambda: cli("train", "--resume", str(runs["straight"]), "--init-from", str(source)))
    assert started.returncode == 0, started.stderr[-2000:]
    checkpoint = load_checkpoint(tmp_path / "tuned" / "checkpoints" / "step-000000000100")
    assert checkpoint.state["step"] == 100 and checkpoint.training.counters["updates"] == 0
    for part in (checkpoint.training.online, checkpoint.training.target):
        for got, want in zip(part, load_policy(source).online, strict=True):
            np.testing.assert_array_equal(got, want)
    record = json.loads((tmp_path / "tuned" / "init_from.json").read_text())
    assert record["model_sha256"] == sha256_file(source / "model.keras") and record["step"] == 300
    assert checkpoint.config.runner.init_from == str(source)
    assert mismatched.returncode == 2 and mismatched.stderr.count("\n") == 1, mismatched.stderr[-2000:]
    assert f"agent.network = {network!r}, this run with {other!r}" in mismatched.stderr
    assert not (tmp_path / "other").exists()
    assert resumed.returncode == 2 and "only --steps may change" in resumed.stderr


def test_a_kept_model_ships_as_a_policy_that_plays_like_its_checkpoint(runs, tmp_path):
    """scripts/package_pretrained.py --model: a run's kept weights (models/) become a
    shipped agent with the files play/evaluate read and nothing a resume needs; its
    weights and its evaluated episode equal the complete checkpoint of the same step. An
    unknown step is refused before anything is written."""
    import importlib.util

    from mario_dqn.checkpoint import CheckpointError, load_checkpoint

    spec = importlib.util.spec_from_file_location("package_pretrained", ROOT / "scripts" / "package_pretrained.py")
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)

    shipped = tmp_path / "shipped"
    info = package.ship_kept_model(runs["straight"], 300, shipped)
    assert info["step"] == 300 and info["episodes"] > 0
    assert sorted(p.name for p in shipped.iterdir()) == sorted(package.SHIPPED_FILES)
    source = runs["straight"] / "checkpoints" / "step-000000000300"
    policy = _assert_plays_like_its_checkpoint(shipped, source)
    assert policy.state["step"] == 300 and policy.config == load_checkpoint(source).config
    with pytest.raises(CheckpointError, match="target.npz is missing"):
        load_checkpoint(shipped)
    with pytest.raises(SystemExit, match="kept no model of step 7 .kept: 100, 200, 300"):
        package.ship_kept_model(runs["straight"], 7, tmp_path / "other")
    assert not (tmp_path / "other").exists()
    with pytest.raises(FileExistsError):
        package.ship_kept_model(runs["straight"], 300, shipped)


def test_a_policy_average_leaves_learning_alone_resumes_exactly_and_is_what_ships(runs, tmp_path):
    """agent.policy_average_steps through the CLI, 1 env, evaluating every 100 steps: the
    run learns exactly like the same run without an average and without evaluations (the
    module's straight1: same training episodes, online, target and optimizer), its
    checkpoints (`best` too) add average.npz, which a stop and resume continues bit for
    bit; model.keras, the kept model and what evaluate/play load are the average, not the
    online weights. A checkpoint that lost average.npz, or online.npz beside it, is
    refused by name."""
    import importlib.util

    from mario_dqn.checkpoint import CheckpointError, _weights_of_keras_file, load_checkpoint, load_policy

    common = ("--envs", "1", "--set", "checkpoint_every=100", "--set", "keep_checkpoints=2", *TINY,
              "--set", "policy_average_steps=200", "--set", "eval_every=100", "--set", "eval_episodes=1")
    straight, first = concurrently(
        lambda: cli("train", "--steps", "300", "--save-dir", str(tmp_path), "--name", "straight", *common),
        lambda: cli("train", "--steps", "150", "--save-dir", str(tmp_path), "--name", "resumed", *common))
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert first.returncode == 0, first.stderr[-2000:]
    second = cli("train", "--resume", str(tmp_path / "resumed"), "--steps", "300", "--no-progress")
    assert second.returncode == 0, second.stderr[-2000:]

    a = tmp_path / "straight" / "checkpoints" / "step-000000000300"
    assert_same_checkpoints(a, tmp_path / "resumed" / "checkpoints" / "step-000000000300")
    plain = runs["straight1"] / "checkpoints" / "step-000000000300"
    rows = metrics_rows(tmp_path / "straight")
    assert [r for r in rows if r["kind"] == "episode"] == metrics_rows(runs["straight1"])
    assert any(r["kind"] != "episode" for r in rows), "it evaluated"
    assert metrics_rows(tmp_path / "resumed") == rows
    assert (tmp_path / "straight" / "checkpoints" / "best" / "average.npz").is_file()
    for name in ("online.npz", "target.npz", "optimizer.npz"):
        for x, y in zip(npz(a / name), npz(plain / name), strict=True):
            np.testing.assert_array_equal(x, y)
    assert not (plain / "average.npz").exists()

    average, online = npz(a / "average.npz"), npz(a / "online.npz")
    assert not all(np.array_equal(x, y) for x, y in zip(average, online)), "the average lags the online weights"
    for x, y, z in zip(_weights_of_keras_file(a), load_policy(a).online, average, strict=True):
        np.testing.assert_array_equal(x, z)
        np.testing.assert_array_equal(y, z)
    spec = importlib.util.spec_from_file_location("package_pretrained", ROOT / "scripts" / "package_pretrained.py")
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)
    shipped = tmp_path / "shipped"
    package.ship_kept_model(tmp_path / "straight", 300, shipped)
    _assert_plays_like_its_checkpoint(shipped, a)
    assert load_checkpoint(a).training.average

    for lost in ("average.npz", "online.npz"):
        broken = tmp_path / f"without-{lost}"
        shutil.copytree(a, broken)
        (broken / lost).unlink()
        with pytest.raises(CheckpointError, match=f"{lost} is missing"):
            load_checkpoint(broken)


def test_evaluate_one_stage_of_an_agent_and_stages_in_the_record(runs):
    out = cli("evaluate", str(runs["straight"]), "--episodes", "2", "--stage", "1-2", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert [row["stage"] for row in result["per_episode"]] == ["1-2", "1-2"]
    assert list(result["per_stage"]) == ["1-2"] and result["per_stage"]["1-2"]["episodes"] == 2
    with open(runs["straight"] / "metrics.csv", newline="") as handle:
        stages = {row["stage"] for row in csv.DictReader(handle) if row["kind"] == "episode"}
    assert stages == {"1-1"}, "every training episode names its stage"


def test_a_stages_evaluation_row_gets_its_own_tensorboard_tags():
    from mario_dqn.metrics_log import row_scalars

    pooled = {"kind": "eval", "step": "5", "flag_rate": "0.5", "stage": ""}
    own = {"kind": "eval", "step": "5", "flag_rate": "0.25", "stage": "1-2"}
    episode = {"kind": "episode", "step": "5", "flag": "1", "stage": "1-2"}
    assert row_scalars(pooled) == [("eval/flag_rate", 0.5)]
    assert row_scalars(own) == [("eval/1-2/flag_rate", 0.25)]
    assert row_scalars(episode) == [("episode/flag", 1.0)]


def test_evaluate_json_is_reproducible(runs):
    outs = concurrently(*[lambda: cli("evaluate", str(runs["straight"]), "--episodes", "2", "--seed", "3", "--json")] * 2)
    for out in outs:
        assert out.returncode == 0, out.stderr[-2000:]
    results = [json.loads(out.stdout) for out in outs]
    assert results[0] == results[1]
    assert results[0]["episodes"] == 2 and len(results[0]["per_episode"]) == 2
    assert set(results[0]) >= {"mean_return", "mean_x_pos", "max_x_pos", "flag_rate"}


def test_a_signal_to_the_main_process_alone_writes_a_loadable_checkpoint(tmp_path):
    """`kill PID` (SIGTERM to the main process only; the env workers are not signalled).
    Signals to the whole group (Ctrl-C, a closed terminal) are in tests/test_signals.py."""
    sig, code = signal.SIGTERM, 143
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "train", "--steps", "100000", "--save-dir",
                             str(tmp_path), "--name", "sig", *TINY], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "sig" / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert f"stopped by {sig.name}" in out
    from mario_dqn.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(tmp_path / "sig")
    assert 0 < checkpoint.state["step"] < 100000


# Bad input (the CLI's one-line refusals, exit 2, nothing touched) is tested as one table
# in tests/test_reliability.py, with corrupt files and faults.


def test_play_record_writes_one_mp4_per_episode_with_every_frame(runs, tmp_path):
    out, evaluated = concurrently(
        lambda: cli("play", str(runs["straight"]), "--episodes", "2", "--record", "--video-dir", str(tmp_path)),
        lambda: cli("evaluate", str(runs["straight"]), "--episodes", "2", "--seed", "0", "--json"))
    assert out.returncode == 0, out.stderr[-2000:]
    videos = sorted(tmp_path.glob("*.mp4"))
    assert len(videos) == 2
    lines = [line for line in out.stdout.splitlines() if line.startswith("episode")]
    assert len(lines) == 2 and all("x_pos" in line and "flag" in line for line in lines)
    evaluation = json.loads(evaluated.stdout)
    import imageio.v2 as imageio

    for video, episode in zip(videos, evaluation["per_episode"], strict=True):
        reader = imageio.get_reader(video)
        assert reader.count_frames() == episode["length"] + 1  # the reset frame, then one per agent step
        assert reader.get_meta_data()["size"] == (256, 240)
        reader.close()


def test_a_run_of_several_stages_evaluates_each_stage_too(tmp_path, monkeypatch):
    import config as C
    from mario_dqn.runner import Trainer

    config = C.apply_overrides(C.Config(), [
        "num_envs=1", "total_steps=100", "learning_starts=50", "batch_size=8", "capacity=1000", "eval_every=100",
        "eval_episodes=4", "checkpoint_every=1000", "max_episode_steps=20", "stages=1-1,1-2"])
    from mario_dqn import runner

    calls = []

    def each_stage(agent, config, episodes, *args, **kwargs):
        calls.append(episodes)
        return evaluate_each_stage(agent, config, episodes, *args, **kwargs)

    evaluate_each_stage = runner.evaluate_each_stage
    monkeypatch.setattr(runner, "evaluate_each_stage", each_stage)
    Trainer(config, tmp_path, progress=False).run()
    assert calls == [4], "each stage gets eval_episodes episodes of its own (evaluate_each_stage)"
    with open(tmp_path / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    evals = [row for row in rows if row["kind"] == "eval"]
    assert [row["stage"] for row in evals] == ["", "1-1", "1-2"], "the pooled row, then one per stage"
    pooled, own = evals[0], evals[1:]
    assert {row["stage"] for row in rows if row["kind"] == "episode"} <= {"1-1", "1-2"}
    # each stage plays its own 4 episodes (not 4 split by seed): the pooled row is their plain mean
    assert float(pooled["x_pos"]) == pytest.approx(np.mean([float(row["x_pos"]) for row in own]))
    assert float(pooled["flag_rate"]) == pytest.approx(np.mean([float(row["flag_rate"]) for row in own]))
    scalars = tensorboard_scalars(tmp_path)
    assert {tag for tag, _, _ in scalars} >= {"eval/flag_rate", "eval/1-1/flag_rate", "eval/1-2/flag_rate"}

    # the time-to-solve harness measures such a run per stage: each stage gets its own
    # episodes (the same seeds), table and summary, and the same numbers evaluate gives
    (tmp_path / "config.json").write_text(C.to_json(config))  # what `main.py train` writes beside the Trainer's files
    harness = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_solve.py"), str(tmp_path),
                              "--episodes", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert harness.returncode == 0, harness.stderr[-2000:]
    assert "stage 1-1, 2 episodes" in harness.stdout and "stage 1-2, 2 episodes" in harness.stdout
    later = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_solve.py"), str(tmp_path),
                            "--episodes", "1", "--stage", "1-2", "--from-step", "101"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert later.returncode == 0, later.stderr[-2000:]
    assert "stage 1-2, 1 episodes, seeds 0..0, epsilon 0.0; 1 earlier models not measured" in later.stdout
    cache = json.loads((tmp_path / "time_to_solve.json").read_text())
    assert not cache.get("seed=0,episodes=1,epsilon=0.0,stage=1-2"), "the model before --from-step was not played"
    from mario_dqn.checkpoint import kept_models
    from mario_dqn.environment import ACTIONS
    from mario_dqn.build import build_agent
    from mario_dqn.evaluation import EVAL_SEED_OFFSET, evaluate

    (weights, info), = kept_models(tmp_path)
    agent = build_agent(config, len(ACTIONS[config.env.action_set]))
    agent.load_weights_file(weights)
    for stage, row in zip(("1-1", "1-2"), own, strict=True):
        measured = cache[f"seed=0,episodes=2,epsilon=0.0,stage={stage}"][str(info["step"])]
        alone = evaluate(agent, C.replace(config, {"env": {"stages": (stage,)}}), 2, 0)
        assert measured == {"flag_rate": alone["flag_rate"], "mean_x_pos": alone["mean_x_pos"],
                            "failed_x_pos": sorted(r.x_pos for r in alone.per_episode if not r.flag)}
        assert len(measured["failed_x_pos"]) == 2  # 20-step episodes: no flag
        assert set(alone["per_stage"]) == {stage}
        # the training run's row of this stage is that stage played alone on the evaluation seeds
        assert info["step"] == 100 and row["step"] == "100"
        trained = evaluate(agent, C.replace(config, {"env": {"stages": (stage,)}}), 4, EVAL_SEED_OFFSET)
        assert float(row["x_pos"]) == pytest.approx(trained["mean_x_pos"])
        assert float(row["flag_rate"]) == trained["flag_rate"]


def test_every_env_decays_to_epsilon_end():
    """One rate for all envs: epsilon_start at step 0, falling linearly to epsilon_end
    (the per-env Ape-X floors were retired in issue 37)."""
    from types import SimpleNamespace

    import config as C
    from mario_dqn.runner import Trainer

    def at(step: int, config: C.Config) -> np.ndarray:
        return Trainer.epsilon(SimpleNamespace(config=config, step=step))

    config = C.apply_overrides(C.Config(), ["num_envs=4", "epsilon_decay_steps=100"])
    assert at(0, config).tolist() == [1.0] * 4
    np.testing.assert_allclose(at(100, config), [0.05] * 4)
    np.testing.assert_allclose(at(10_000, config), at(100, config))
    np.testing.assert_allclose(at(50, config), [(1.0 + 0.05) / 2] * 4)


@pytest.mark.parametrize("probability, guided, explore, noops, frontier, midway",
                         [(1.0, 30, 0, 0, False, "guide"), (0.7, 2, 30, 10, True, "explore_left")])
def test_a_run_with_restarts_resumes_exactly(tmp_path, probability, guided, explore, noops, frontier, midway):
    """env.restart_from_best through the CLI, 2 envs: training episodes begin along
    earlier ones (restart_steps > 0 in metrics.csv), and a run stopped at 150 and resumed
    gives the numbers, checkpoint and kept episodes of one never stopped (stopped in the
    middle of guided restart steps, or of exploration steps, both part of the episode state;
    the second also with no-op starts, whose generator is too, and with frontier restarts,
    whose success estimates are)."""
    common = ("--envs", "2", "--save-dir", str(tmp_path), "--set", "checkpoint_every=100", *TINY,
              "--set", "max_episode_steps=30", "--set", f"restart_from_best={probability}",
              "--set", f"restart_guided={guided}", "--set", f"restart_explore={explore}", "--set", f"noop_max={noops}",
              "--set", f"restart_frontier={str(frontier).lower()}")
    straight, first = concurrently(lambda: cli("train", "--steps", "300", "--name", "straight", *common),
                                   lambda: cli("train", "--steps", "150", "--name", "resumed", *common))
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert first.returncode == 0, first.stderr[-2000:]
    stopped = json.loads((tmp_path / "resumed" / "checkpoints" / "step-000000000150" / "state.json").read_text())
    assert any(env["restarts"][midway] for env in stopped["envs"]), f"stopped in the middle of a restart's {midway}"
    again = cli("train", "--resume", str(tmp_path / "resumed"), "--steps", "300", "--no-progress")
    assert again.returncode == 0, again.stderr[-2000:]
    rows = metrics_rows(tmp_path / "straight")
    episodes = [row for row in rows if row["kind"] == "episode"]
    assert any(int(row["restart_steps"]) > 0 for row in episodes), "some episodes must restart"
    assert rows == metrics_rows(tmp_path / "resumed")
    a, b = (tmp_path / name / "checkpoints" / "step-000000000300" for name in ("straight", "resumed"))
    assert_same_checkpoints(a, b)
    envs = json.loads((a / "state.json").read_text())["envs"]
    assert envs == json.loads((b / "state.json").read_text())["envs"]
    assert all(env["restarts"]["best"]["1-1"] for env in envs), "each env keeps its own furthest episodes"
    if frontier:
        assert any(p != 0.5 for env in envs for p in env["restarts"]["success"]["1-1"]), "restarts were scored"


def test_guided_restart_steps_are_stored_with_the_actions_taken(tmp_path):
    """With env.restart_guided the env replaces the agent's (here random) actions with the
    kept episode's; the replay memory must hold the actions that were taken, i.e. the
    running episode's own record of them (its ResumableEpisode actions after the replayed ones)."""
    import config as C
    from mario_dqn.runner import Trainer

    config = C.apply_overrides(C.Config(), [
        "num_envs=1", "total_steps=130", "learning_starts=1000", "capacity=1000", "eval_every=0",
        "checkpoint_every=1000", "max_episode_steps=20", "epsilon_start=1.0", "epsilon_end=1.0",
        "restart_from_best=1.0", "restart_guided=30"])
    trainer = Trainer(config, tmp_path, progress=False)
    trainer.run()
    state = json.loads((tmp_path / "checkpoints" / "step-000000000130" / "state.json").read_text())["envs"][0]
    visible = state["actions"][state["restarts"]["restarted_at"]:]
    assert state["restarts"]["restarted_at"] > 0 and len(visible) >= 5, "the run ends in a restarted episode"
    ring, cursor = trainer.replay._ring["action"][0], int(trainer.replay._cursor[0])
    stored = ring[cursor - 1 - len(visible): cursor - 1].tolist()  # the newest entry has no action yet
    assert stored == visible


def test_the_solved_streak_counts_evaluations_in_a_row_at_the_rate_on_every_stage():
    import config as C
    from mario_dqn.solved import check_due, is_solved, next_streak

    assert next_streak(0, [0.8], 0.8) == 1 and next_streak(1, [1.0], 0.8) == 2
    assert next_streak(2, [0.6], 0.8) == 0  # one evaluation under it starts the count again
    assert next_streak(2, [1.0, 0.6], 0.8) == 0 and next_streak(2, [1.0, 0.8], 0.8) == 3  # every stage's own
    runner = C.apply_overrides(C.Config(), ["stop_when_solved=3"]).runner
    confirmed = {"solved_confirmed": True}
    assert is_solved({"solved_streak": 3, **confirmed}, runner)
    assert not is_solved({"solved_streak": 2, **confirmed}, runner)
    assert not is_solved({}, runner)  # a checkpoint from before the counter
    assert not is_solved({"solved_streak": 99, **confirmed}, C.Config().runner)  # off by default
    # The streak alone is not enough while runner.solved_episodes asks for a check ...
    assert not is_solved({"solved_streak": 3}, runner) and check_due({"solved_streak": 3}, runner)
    assert not check_due({"solved_streak": 2}, runner) and not check_due({"solved_streak": 3, **confirmed}, runner)
    # ... and is with the check off (0), as before it existed.
    unchecked = C.apply_overrides(C.Config(), ["stop_when_solved=3", "solved_episodes=0"]).runner
    assert is_solved({"solved_streak": 3}, unchecked) and not check_due({"solved_streak": 3}, unchecked)
    with pytest.raises(C.ConfigError, match="needs runner.eval_every > 0"):
        C.apply_overrides(C.Config(), ["stop_when_solved=3", "eval_every=0"])


def test_a_run_ends_when_solved_and_stays_ended(tmp_path):
    """With runner.stop_when_solved the run ends after that many evaluations in a row at the
    flag rate (0% here, so a tiny run gets there), with its checkpoint; resuming it is
    refused in one line, and a campaign counts it trained."""
    from mario_dqn import campaign
    from mario_dqn import run_dir as RD

    run = tmp_path / "solved"
    out = cli("train", "--steps", "1000", "--envs", "1", "--save-dir", str(tmp_path), "--name", "solved", *TINY,
              "--set", "eval_every=40", "--set", "eval_episodes=1", "--set", "max_episode_steps=15",
              "--set", "checkpoint_every=1000", "--set", "stop_when_solved=2", "--set", "solved_flag_rate=0",
              "--set", "solved_episodes=2")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "solved check at step 80: " in out.stdout and "on 2 episodes (seeds 0-1)\n" in out.stdout
    assert ("solved: 2 evaluations in a row at >= 0% flags and its check on 2 episodes (runner.stop_when_solved); "
            "ended at step 80") in out.stdout
    rows = metrics_rows(run)
    assert [row["step"] for row in rows if row["kind"] == "eval"] == ["40", "80"]
    assert [row["step"] for row in rows if row["kind"] == "check"] == ["80"]  # only once the streak was there
    latest = run / "checkpoints" / "step-000000000080"
    state = json.loads((latest / "state.json").read_text())
    assert state["solved_streak"] == 2 and state["solved_confirmed"] is True
    assert RD.ended_solved(run) and campaign.trained(run, 1000) and not campaign.trained(tmp_path / "nowhere", 1000)
    again = cli("train", "--resume", str(run), "--steps", "2000", "--no-progress")
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert "ended solved at step 80 (2 evaluations in a row at >= 0% flags" in again.stderr
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-000000000080"]


def test_a_solved_check_under_the_rate_starts_the_streak_over(tmp_path, monkeypatch):
    """The streak of in-training evaluations (which replay the same seeds) only ends the run
    once a check on runner.solved_episodes episodes of seeds 0.. reaches the rate too; a
    check under it starts the streak over. A run that ended on the streak alone, before the
    check existed (its config.json lacks solved_episodes), resumes and checks first."""
    import config as C
    from mario_dqn import run_dir as RD
    from mario_dqn import runner as R
    from mario_dqn.checkpoint import load_checkpoint
    from mario_dqn.solved import CHECK_SEED

    played: list[tuple[int, int]] = []
    check_rates = iter([0.5, 0.9])  # then 0.6 for every later check

    def fake_evaluate(agent, config, episodes, seed, epsilon, stop=None):
        played.append((episodes, seed))
        rate = next(check_rates, 0.6) if seed == CHECK_SEED else 1.0
        return {"mean_return": 1.0, "mean_x_pos": 40.0, "max_x_pos": 40, "flag_rate": rate, "per_stage": {}}

    monkeypatch.setattr(R, "evaluate", fake_evaluate)
    base = ["num_envs=1", "total_steps=100", "learning_starts=20", "batch_size=8", "capacity=1000",
            "eval_every=10", "eval_episodes=2", "checkpoint_every=1000", "max_episode_steps=15",
            "target_update_period=10", "policy_average_steps=0", "stop_when_solved=2"]
    lines: list[str] = []
    (tmp_path / "checked").mkdir()
    config = C.apply_overrides(C.Config(), [*base, "solved_episodes=3"])
    result = R.Trainer(config, tmp_path / "checked", progress=False, log=lines.append).run()
    assert result["solved"] and result["step"] == 40  # streak at 20 (check 50%: over), again at 40 (90%)
    evals = (2, R.EVAL_SEED_OFFSET)  # the config's seed is 0
    assert played == [evals, evals, (3, 0), evals, evals, (3, 0)]
    assert [(row["step"], row["flag_rate"]) for row in metrics_rows(tmp_path / "checked")
            if row["kind"] == "check"] == [("20", "0.5"), ("40", "0.9")]
    assert lines[0] == ("solved check at step 20: 50% flags on 3 episodes (seeds 0-2), under 80%: "
                        "the streak starts over, training goes on")
    assert lines[1] == "solved check at step 40: 90% flags on 3 episodes (seeds 0-2)"

    # The streak alone (the check off) ends a run at 20; read with the check, it resumes and checks first.
    (tmp_path / "old").mkdir()
    unchecked = C.apply_overrides(C.Config(), [*base, "solved_episodes=0"])
    played.clear()
    assert R.Trainer(unchecked, tmp_path / "old", progress=False, log=lines.append).run()["step"] == 20
    assert played == [evals, evals]
    old = json.loads(C.to_json(unchecked))
    del old["runner"]["solved_episodes"]  # as a config.json written before the field
    (tmp_path / "old" / "config.json").write_text(json.dumps(old))
    resumed_config, checkpoint = RD.resume_point(tmp_path / "old", None)  # not refused as solved
    assert resumed_config.runner.solved_episodes == 20
    resumed = R.Trainer(resumed_config, tmp_path / "old", progress=False, log=lines.append)
    resumed.restore(checkpoint)
    before = len(lines)
    result = resumed.run()
    assert played[2] == (20, 0) and lines[before].startswith("solved check at step 20: 60% flags on 20 episodes")
    assert not result["solved"] and result["step"] == 100
    # After the failed check the streak grew again from the next evaluation, and was checked at each second one.
    assert [row["step"] for row in metrics_rows(tmp_path / "old") if row["kind"] == "check"] == [
        "20", "40", "60", "80", "100"]
    assert load_checkpoint(tmp_path / "old").state["solved_confirmed"] is False


def _loop_at_first_episode_end(trainer, stop_after: int | None = None) -> None:
    """Make the trainer's envs report the first episode that ends as ended by a castle
    maze's loop (``info['looped']``, as LoopbackIsDeath reports it; a real loop needs 4-4
    and a route to its check), and ask for a stop after ``stop_after`` steps."""
    real, calls = trainer.envs.step_wait, []

    def step_wait():
        obs, reward, terminated, truncated, info = real()
        calls.append(1)
        done = np.logical_or(terminated, truncated)
        if done.any() and "looped" not in info["final_info"] and not getattr(trainer, "_injected", False):
            info["final_info"]["looped"] = done.copy()
            trainer._injected = True
        if stop_after is not None and len(calls) >= stop_after:
            trainer.stop.name = "SIGINT"
        return obs, reward, terminated, truncated, info

    trainer.envs.step_wait = step_wait


def test_a_loop_lengthens_the_horizon_from_then_on_and_a_resume_keeps_it(tmp_path):
    """agent.loop_gamma: the first training episode that ends at a loop switches the replay's
    discount to it (logged once); state.json records it, so a run resumed after the switch
    learns as the unstopped run does. Without loop_gamma the loop is recorded, gamma kept."""
    import config as C
    from mario_dqn.checkpoint import load_checkpoint
    from mario_dqn.runner import Trainer

    base = ["num_envs=1", "total_steps=60", "learning_starts=20", "batch_size=8", "capacity=1000",
            "eval_every=0", "checkpoint_every=1000", "max_episode_steps=15", "target_update_period=10",
            "policy_average_steps=0"]
    config = C.apply_overrides(C.Config(), [*base, "loop_gamma=0.99"])
    assert config.agent.gamma == 0.95
    for name in ("straight", "stopped", "off"):
        (tmp_path / name).mkdir()
    lines: list[str] = []
    straight = Trainer(config, tmp_path / "straight", progress=False, log=lines.append)
    _loop_at_first_episode_end(straight)
    straight.run()
    assert straight.replay.gamma == 0.99 and straight.counters.looped
    assert lines[0] == "step 15: the game looped Mario back for a wrong route; gamma 0.95 -> 0.99 (agent.loop_gamma)"
    assert not any("looped" in line for line in lines[1:])

    stopped = Trainer(config, tmp_path / "stopped", progress=False, log=lines.append)
    _loop_at_first_episode_end(stopped, stop_after=30)
    assert stopped.run()["step"] == 30
    assert load_checkpoint(tmp_path / "stopped").state["looped"] is True
    resumed = Trainer(config, tmp_path / "stopped", progress=False, log=lines.append)
    assert resumed.replay.gamma == 0.95
    resumed.restore(load_checkpoint(tmp_path / "stopped"))
    assert resumed.replay.gamma == 0.99
    resumed.run()
    assert metrics_rows(tmp_path / "stopped") == metrics_rows(tmp_path / "straight")
    a, b = (tmp_path / name / "checkpoints" / "step-000000000060" for name in ("straight", "stopped"))
    assert_same_checkpoints(a, b)

    off = Trainer(C.apply_overrides(C.Config(), [*base, "total_steps=20"]), tmp_path / "off", progress=False,
                  log=lines.append)
    _loop_at_first_episode_end(off)
    off.run()
    assert off.counters.looped and off.replay.gamma == 0.95
    assert sum("looped" in line for line in lines) == 2  # straight's and stopped's switches, not off's


def test_a_loop_starts_the_run_over_with_loop_action_set_as_a_run_begun_with_it(tmp_path):
    """env.loop_action_set: the first training episode that ends at a castle maze's loop ends
    the attempt with right_only; the run directory then holds, file for file, the run that was
    begun with the wider set (metrics, checkpoint, config), and started-over.json what the
    attempt cost. A run already on that set only lengthens its horizon (agent.loop_gamma)."""
    import config as C
    from mario_dqn import run_dir as RD
    from mario_dqn.runner import Trainer, run_to_the_end

    base = ["num_envs=1", "total_steps=40", "learning_starts=20", "batch_size=8", "capacity=1000",
            "eval_every=0", "checkpoint_every=1000", "max_episode_steps=15", "target_update_period=10",
            "policy_average_steps=0", "loop_gamma=0.99", "loop_action_set=simple"]
    config = C.apply_overrides(C.Config(), base)
    assert config.env.action_set == "right_only"
    lines: list[str] = []
    for name in ("over", "begun"):
        (tmp_path / name).mkdir()
    RD.write_config(tmp_path / "over", config)
    first = Trainer(config, tmp_path / "over", progress=False, log=lines.append)
    _loop_at_first_episode_end(first)
    last, result = run_to_the_end(first)
    assert first.start_over == "simple" and first.agent.num_actions == 5 and first.replay.gamma == 0.95
    assert last is not first and last.agent.num_actions == 7 and result["step"] == 40
    assert lines[0] == ("step 15: the game looped Mario back for a wrong route; starting over from step 0 with "
                        "env.action_set=simple instead of right_only (env.loop_action_set: a maze's way out can "
                        "need Left)")
    note = json.loads((tmp_path / "over" / "started-over.json").read_text())
    assert (note["action_set_before"], note["action_set"], note["steps_before"]) == ("right_only", "simple", 15)

    wide = C.apply_overrides(config, ["action_set=simple"])
    RD.write_config(tmp_path / "begun", wide)
    Trainer(wide, tmp_path / "begun", progress=False, log=lines.append).run()
    assert metrics_rows(tmp_path / "over") == metrics_rows(tmp_path / "begun")
    assert min(int(row["step"]) for row in metrics_rows(tmp_path / "over")) > 0  # the attempt's rows are gone
    assert (tmp_path / "over" / "config.json").read_text() == (tmp_path / "begun" / "config.json").read_text()
    a, b = (tmp_path / name / "checkpoints" / "step-000000000040" for name in ("over", "begun"))
    assert_same_checkpoints(a, b)
    assert sorted(p.name for p in (tmp_path / "over" / "checkpoints").glob("step-*")) == ["step-000000000040"]

    (tmp_path / "already").mkdir()
    already = Trainer(wide, tmp_path / "already", progress=False, log=lines.append)
    _loop_at_first_episode_end(already)
    assert run_to_the_end(already)[0] is already
    assert already.start_over is None and already.replay.gamma == 0.99
    assert not (tmp_path / "already" / "started-over.json").exists()
