"""Reliability (issue 6): faults, signals and bad input never lose a run.

- SIGKILL at random moments and inside a checkpoint write: the newest complete
  checkpoint loads and --resume reaches the requested step (a reduced form of
  benchmarks/fault_injection.py, whose code it shares);
- a full disk while checkpointing: exit 1, one line naming the checkpoint, the
  previous checkpoint byte-identical, no temporary or half checkpoint left;
- corrupt files and versions: refused with one line naming the file, exit 2;
- bad input (a table of CLI mistakes): exit 2, one line, no traceback, nothing changed.

SIGINT/SIGTERM writing a checkpoint before exit are tested in tests/test_runner.py
(test_signals_write_a_loadable_checkpoint: a signal to the main process) and in
tests/test_signals.py (to the whole process group, as a terminal or `timeout` sends them).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import fault_injection
from benchmarks.fault_injection import error_lines, run_cli, run_trials
from mario_dqn.training_state import TrainingState

ROOT = Path(__file__).resolve().parent.parent
# Two envs, whatever the default: the step counts below (checkpoints at 100 and 150) are
# multiples of the envs' stride.
TINY = [*fault_injection.TINY, "--envs", "2", "--set", "policy_average_steps=0"]
"""Tiny runs, without the policy average: small_disk's size is set by these checkpoints'."""
EVERY_100 = ["--set", "checkpoint_every=100", "--set", "keep_checkpoints=2"]
STEP_100, STEP_150, STEP_200 = "step-000000000100", "step-000000000150", "step-000000000200"


def hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (symlinks and directories by name only)."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink() or path.is_dir():
            out[key] = "<dir>" if path.is_dir() else "<link>"
        else:
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def assert_one_line_refusal(out: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = error_lines(out.stderr)
    assert out.returncode == code, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert len(lines) == 1, out.stderr[-2000:]
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A finished tiny run: checkpoints at steps 100 and 150 (the latest with replay)."""
    root = tmp_path_factory.mktemp("base")
    out = run_cli("train", "--steps", "150", "--save-dir", str(root), "--name", "run", *EVERY_100, *TINY)
    assert out.returncode == 0, out.stderr[-2000:]
    run = root / "run"
    assert (run / "checkpoints" / "latest").read_text().strip() == STEP_150
    return run


# --------------------------------------------------------------------------- SIGKILL


def test_sigkill_at_random_moments_and_mid_write_never_loses_the_run(tmp_path):
    """The random kill lands a random 0-8 s after the run's first complete checkpoint (a
    kill before it has nothing to lose, and passes by refusing the resume); the write kill
    counts only when it left the write's temporary directory behind: killed inside it."""
    results = run_trials(2, tmp_path, seed=6, modes=["during-write", "random"], window=(0.0, 8.0),
                         from_checkpoint=True)
    for trial in results:
        assert trial.survived, trial.line()
    write, anytime = results
    assert write.checkpoint is not None, "a kill during the 2nd/3rd write leaves an earlier checkpoint"
    assert write.killed_mid_write, f"the kill did not land inside a checkpoint write: {write.line()}"
    assert write.checkpoint_before_kill is not None and write.checkpoint >= write.checkpoint_before_kill
    assert anytime.checkpoint_before_kill is not None, f"no checkpoint existed before the kill: {anytime.line()}"
    assert anytime.checkpoint is not None and anytime.checkpoint >= anytime.checkpoint_before_kill
    assert anytime.resumed_to is not None, "it resumed from that checkpoint, not from nothing"


# --------------------------------------------------------------------------- full disk

FULL_DISK_HOOK = '''\
"""Run main.py with a disk that fills up during the checkpoint named by MARIO_FAIL_CHECKPOINT."""
import errno, hashlib, json, os, sys
from pathlib import Path

import numpy as np

import main
from mario_dqn import checkpoint as ckpt

FAIL = os.environ["MARIO_FAIL_CHECKPOINT"]
real_save_checkpoint, real_np_save = ckpt.save_checkpoint, np.save


def save_checkpoint(directory, step, *args, **kwargs):
    if ckpt.step_name(step) == FAIL and kwargs.get("name") is None:  # what was there before this save
        snapshot = {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in sorted(Path(directory).rglob("*")) if p.is_file()}
        Path(os.environ["MARIO_SNAPSHOT"]).write_text(json.dumps(snapshot))
    return real_save_checkpoint(directory, step, *args, **kwargs)


def full_disk_save(file, arr, *args, **kwargs):
    if f".tmp-{FAIL}-" in str(file):  # the replay arrays: the disk takes a first part, then is full
        with open(file, "wb") as handle:
            handle.write(b"\\x93NUMPY" + bytes(65536))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
    return real_np_save(file, arr, *args, **kwargs)


if __name__ == "__main__":  # env workers are spawned: they import this file too
    ckpt.save_checkpoint = save_checkpoint
    np.save = full_disk_save
    sys.argv = ["main.py", *sys.argv[1:]]
    main.main()
'''


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path):
    from mario_dqn.checkpoint import latest_checkpoint, load_checkpoint

    hook = tmp_path / "full_disk.py"
    hook.write_text(FULL_DISK_HOOK)
    snapshot = tmp_path / "before.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MARIO_FAIL_CHECKPOINT": STEP_200,
           "MARIO_SNAPSHOT": str(snapshot)}
    out = subprocess.run([sys.executable, str(hook), "train", "--steps", "300", "--save-dir", str(tmp_path),
                          "--name", "full", *EVERY_100, *TINY], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    line = assert_one_line_refusal(out, code=1)
    run, checkpoints = tmp_path / "full", tmp_path / "full" / "checkpoints"
    assert f"cannot write checkpoint {checkpoints / STEP_200}" in line
    assert "No space left on device" in line and f"{STEP_100} is intact" in line and f"--resume {run}" in line
    assert "done:" not in out.stdout, "training stopped at the failure"
    # the checkpoints directory is exactly as it was before the failed save began
    before = json.loads(snapshot.read_text())
    assert STEP_100 + "/COMPLETE" in before and STEP_100 + "/replay/frames.npy" in before
    after = {k: v for k, v in hashes(checkpoints).items() if v != "<dir>"}
    assert after == before
    assert not list(checkpoints.glob(".tmp-*")) and not (checkpoints / STEP_200).exists()
    assert latest_checkpoint(checkpoints).name == STEP_100
    assert load_checkpoint(run).state["step"] == 100
    # once the disk has room again, the resume the message suggests finishes the run
    resumed = run_cli("train", "--resume", str(run), "--steps", "200", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (checkpoints / "latest").read_text().strip() == STEP_200


@pytest.fixture
def small_disk(tmp_path):
    """A 50 MiB tmpfs: one tiny-run checkpoint (~33 MB with replay) fits, a second does not.
    None where this process may not mount one: mounting takes CAP_SYS_ADMIN, which root in
    a container (as CI runs) often lacks, so `mount` fails there even as root; the test then
    has the kernel refuse the write another way (see test_real_full_filesystem_stops_cleanly)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=50m", "tmpfs", str(mount)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is None or done.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


FILE_SIZE_LIMIT = 1 << 20
"""RLIMIT_FSIZE put on the trainer after its first checkpoint where no tmpfs can be
mounted: more than metrics.csv and TensorBoard's events grow to in these runs, less than
the ~7 MB of every model, optimizer and replay file of a checkpoint."""


def _train_until_the_kernel_refuses_a_write(save_dir: Path) -> tuple[subprocess.CompletedProcess, str]:
    """The tiny run's ``train``, its file size limited (``prlimit``, which binds root too)
    once checkpoint 100 is whole: the kernel refuses checkpoint 200's first big file
    mid-write with EFBIG. Returns the finished process and the kernel's words for it.
    (Python ignores SIGXFSZ, so the write fails with an OSError instead of a signal.)"""
    import resource
    import time

    checkpoints = save_dir / "full" / "checkpoints"
    args = ["train", "--steps", "300", "--save-dir", str(save_dir), "--name", "full", *EVERY_100, *TINY,
            "--set", "keep_models=false"]  # no kept model beside the checkpoint: only the checkpoint writes ~MBs
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT,
                            env=fault_injection.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (checkpoints / STEP_100 / "COMPLETE").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint 100"
            time.sleep(0.01)
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), os.strerror(errno.EFBIG)


def test_real_full_filesystem_stops_cleanly(small_disk, tmp_path):
    """The kernel's own refusal, mid-file (the resume after it is tested above): ENOSPC on
    a full tmpfs where one can be mounted, else EFBIG from a file size limit; it never skips."""
    from mario_dqn.checkpoint import is_complete, latest_checkpoint, load_checkpoint

    if small_disk is not None:
        root = small_disk
        out = run_cli("train", "--steps", "300", "--save-dir", str(root), "--name", "full", *EVERY_100, *TINY)
        refusal = "No space left on device"
    else:
        root = tmp_path / "limited"
        out, refusal = _train_until_the_kernel_refuses_a_write(root)
    line = assert_one_line_refusal(out, code=1)
    run, checkpoints = root / "full", root / "full" / "checkpoints"
    assert refusal in line and f"cannot write checkpoint {checkpoints / STEP_200}" in line
    assert f"{STEP_100} is intact" in line
    assert not list(checkpoints.glob(".tmp-*")), "the half-written copy is removed (it holds the space)"
    assert all(is_complete(p) for p in checkpoints.glob("step-*"))
    assert latest_checkpoint(checkpoints).name == STEP_100
    assert load_checkpoint(run).state["step"] == 100


def test_write_failures_from_tensorboard_and_metrics_are_one_line_too(tmp_path):
    """TensorBoard's writer raises TensorFlow's errors, not OSError; the CLI reports those
    (when they name the run) like any other failed write, and lets real bugs through."""
    import tensorflow as tf

    from mario_dqn import run_dir as entry

    run = tmp_path / "run"
    message = ("{{function_node __wrapped__FlushSummaryWriter_device_/job:localhost}} "  # as TF 2.21 words it
               + f"{run}/tensorboard/events.out.tfevents.1.v2; No space left on device\n\tFailed to flush ")
    flush = tf.errors.ResourceExhaustedError(None, None, message)
    what = entry.write_failure(run, flush)
    assert what == f"cannot write {run}/tensorboard/events.out.tfevents.1.v2; No space left on device Failed to flush"
    csv_full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(run / "metrics.csv"))
    assert entry.write_failure(run, csv_full) == f"cannot write {run / 'metrics.csv'}: No space left on device"
    assert entry.write_failure(run, tf.errors.InvalidArgumentError(None, None, "Incompatible shapes")) is None
    assert entry.write_failure(run, ValueError("a bug")) is None
    error = entry.io_failure(run, what)
    assert error.exit_code == 1 and "training stopped before its first checkpoint" in str(error)


class _FakeAgent:
    """What save_checkpoint asks of an agent: its training state and its model file."""

    def __init__(self, value: float) -> None:
        self.value = value

    def training_state(self) -> TrainingState:
        weights = [np.full(3, self.value, np.float32)]
        return TrainingState(online=weights, target=weights, optimizer=[np.zeros(2, np.float32)], counters={})

    def save_model(self, path: Path) -> None:
        Path(path).write_bytes(b"model %r" % self.value)


class _FullDiskReplay:
    """A replay whose save writes part of a file, then finds the disk full."""

    def save(self, directory: Path) -> None:
        Path(directory).mkdir()
        (Path(directory) / "frames.npy").write_bytes(bytes(1000))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(directory) / "frames.npy"))


def test_failed_save_raises_one_line_and_leaves_earlier_checkpoints_whole(tmp_path):
    import config as C
    from mario_dqn import checkpoint as ckpt

    first = ckpt.save_checkpoint(tmp_path, 1, _FakeAgent(1.0), {}, C.Config())
    before = hashes(tmp_path)
    with pytest.raises(ckpt.CheckpointWriteError) as info:
        ckpt.save_checkpoint(tmp_path, 2, _FakeAgent(2.0), {}, C.Config(),
                             replay=_FullDiskReplay())
    message = str(info.value)
    assert "\n" not in message and info.value.errno == errno.ENOSPC
    assert message.startswith(f"cannot write checkpoint {tmp_path / ckpt.step_name(2)}: No space left on device")
    assert hashes(tmp_path) == before, "no .tmp-* and no step-2 left; step-1 byte-identical"
    assert ckpt.latest_checkpoint(tmp_path) == first


def test_failed_replacement_of_best_brings_the_old_best_back(tmp_path, monkeypatch):
    import config as C
    from mario_dqn import checkpoint as ckpt

    ckpt.save_checkpoint(tmp_path, 5, _FakeAgent(5.0), {}, C.Config(), name="best")
    before = hashes(tmp_path)
    real_write_text = Path.write_text

    def marker_fails(self, *args, **kwargs):  # the new `best` is in place, its marker does not fit
        if self.name == ckpt.MARKER and "best" in str(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", marker_fails)
    with pytest.raises(ckpt.CheckpointWriteError, match="cannot write checkpoint .*best: No space left"):
        ckpt.save_checkpoint(tmp_path, 9, _FakeAgent(9.0), {}, C.Config(),
                             name="best")
    assert hashes(tmp_path) == before


def test_prune_keeps_n_and_clears_interrupted_saves(tmp_path):
    """What a SIGKILL can leave mid-save or mid-prune is cleaned at the next save."""
    from mario_dqn import checkpoint as ckpt

    for step in (1, 2, 3, 4):
        (tmp_path / ckpt.step_name(step) / "replay").mkdir(parents=True)
        (tmp_path / ckpt.step_name(step) / ckpt.MARKER).write_text("ok\n")
    (tmp_path / ckpt.step_name(5)).mkdir()  # renamed into place, killed before its marker
    (tmp_path / ".tmp-step-000000000006-123").mkdir()  # killed while writing
    (tmp_path / ".old-best-123").mkdir()  # killed after setting `best` aside, before the new one was whole
    (tmp_path / ".old-best-123" / ckpt.MARKER).write_text("ok\n")
    (tmp_path / "best").mkdir()  # the new one, renamed in without its marker
    ckpt.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", ckpt.step_name(3), ckpt.step_name(4)]
    assert ckpt.is_complete(tmp_path / "best"), "the old, complete `best` came back"
    assert not (tmp_path / ckpt.step_name(3) / "replay").exists() and (tmp_path / ckpt.step_name(4) / "replay").is_dir()


@pytest.mark.parametrize("state,message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "is not a JSON object"),
    ('{"step": 1, "agent": {}}', "has format_version None"),
    ('{"format_version": 99, "step": 1, "agent": {}}', "has format_version 99"),
    ('{"format_version": 1, "agent": {}}', "is missing 'step'"),
    ('{"format_version": 1, "step": -4, "agent": {}}', "has a bad step -4"),
])
def test_read_state_refuses_what_it_cannot_trust(tmp_path, state, message):
    from mario_dqn.checkpoint import CheckpointError, read_state

    (tmp_path / "state.json").write_text(state)
    with pytest.raises(CheckpointError, match=message) as info:
        read_state(tmp_path / "state.json")
    assert str(tmp_path / "state.json") in str(info.value)


# --------------------------------------------------------------------------- corrupt files


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _all_configs(run: Path, edit) -> None:
    for path in [run / "config.json", *run.glob("checkpoints/*/config.json")]:
        _edit_json(path, edit)


def _wrong_shape_replay(run: Path) -> None:
    frames = run / "checkpoints" / STEP_150 / "replay" / "frames.npy"
    np.save(frames, np.zeros((10, 84, 84), np.uint8))


def _garbled_metrics(run: Path) -> None:
    """An episode row with text for its return: resume rebuilds the logs from these rows."""
    with open(run / "metrics.csv", "a") as handle:
        handle.write("episode,120,1,lots,120,300,0,0.9,,,10.0,,\n")


def _old_version(run: Path) -> None:
    def old(data):
        data["format_version"] = 0
    for path in [run / "config.json", *run.glob("checkpoints/*/config.json"), *run.glob("checkpoints/*/state.json")]:
        _edit_json(path, old)


CORRUPTIONS = {
    # name: (corrupt(run), {command: file the one-line message must name, relative to the run})
    "truncated model.keras": (lambda run: _truncate(run / "checkpoints" / STEP_150 / "model.keras"),
                              {"resume": f"checkpoints/{STEP_150}/model.keras",
                               "evaluate": f"checkpoints/{STEP_150}/model.keras",
                               "play": f"checkpoints/{STEP_150}/model.keras"}),
    "replay array of the wrong shape": (_wrong_shape_replay, {"resume": f"checkpoints/{STEP_150}/replay/frames.npy"}),
    "config.json missing a field": (lambda run: _all_configs(run, lambda d: d["agent"].pop("gamma")),
                                    {"resume": "config.json", "evaluate": f"checkpoints/{STEP_150}/config.json",
                                     "play": f"checkpoints/{STEP_150}/config.json"}),
    "config.json with an extra field": (lambda run: _all_configs(run, lambda d: d["agent"].update(gamma2=0.5)),
                                        {"resume": "config.json", "evaluate": f"checkpoints/{STEP_150}/config.json",
                                         "play": f"checkpoints/{STEP_150}/config.json"}),
    "run dir of another format_version": (_old_version,
                                          {"resume": "config.json", "evaluate": f"checkpoints/{STEP_150}/config.json",
                                           "play": f"checkpoints/{STEP_150}/config.json"}),
    "state.json of another format_version": (
        lambda run: _edit_json(run / "checkpoints" / STEP_150 / "state.json", lambda d: d.update(format_version=2)),
        {"resume": f"checkpoints/{STEP_150}/state.json", "evaluate": f"checkpoints/{STEP_150}/state.json",
         "play": f"checkpoints/{STEP_150}/state.json"}),
    "metrics.csv with a garbled value": (_garbled_metrics, {"resume": "metrics.csv"}),
    "state.json missing a runner field": (
        lambda run: _edit_json(run / "checkpoints" / STEP_150 / "state.json", lambda d: d.pop("episodes")),
        {"resume": f"checkpoints/{STEP_150}/state.json"}),
}
COMMANDS = {
    "resume": lambda run: ("train", "--resume", str(run), "--steps", "1000", "--no-progress"),
    "evaluate": lambda run: ("evaluate", str(run), "--episodes", "1"),
    "play": lambda run: ("play", str(run), "--episodes", "1"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_files_are_refused_with_one_line_naming_the_file(base, tmp_path, corruption):
    corrupt, expected = CORRUPTIONS[corruption]
    run = tmp_path / "run"
    shutil.copytree(base, run)
    corrupt(run)
    before = hashes(run)
    for command, file in expected.items():
        out = run_cli(*COMMANDS[command](run), timeout=120)
        line = assert_one_line_refusal(out)
        assert str(run / file) in line, (command, line)
        assert hashes(run) == before, f"{command} changed files of a run it refused"


# --------------------------------------------------------------------------- bad input

BAD_INPUT = [
    # (args, part of the one error line); {run} an existing finished run (steps 100, 150),
    # {root} the directory holding it, {file} a plain file, {other} a non-run directory with a file,
    # {half} a directory that looks like a checkpoint without its COMPLETE marker.
    # train: values, types and ranges
    (["train", "--world", "9"], "world must be 1-8"),
    (["train", "--stage", "5"], "stage must be 1-4"),
    (["train", "--steps", "0"], "is not in the range x>=1"),
    (["train", "--steps", "-5"], "is not in the range x>=1"),
    (["train", "--steps", "many"], "is not a valid integer"),
    (["train", "--envs", "0"], "is not in the range x>=1"),
    (["train", "--envs", "65"], "runner.num_envs must be <= 64"),
    (["train", "--seed", "-1"], "runner.seed must be >= 0"),
    (["train", "--seed", "1.5"], "is not a valid integer"),
    (["train", "--stages", "1-1,9-9"], "world must be 1-8"),
    (["train", "--stages", "one"], "bad stage"),
    (["train", "--unknown-option"], "No such option"),
    # config overrides
    (["train", "--set", "gama=0.9"], "unknown config key 'gama'"),
    (["train", "--set", "agent.nope=1"], "unknown config key"),
    (["train", "--set", "gamma=2"], "agent.gamma must be <= 1.0"),
    (["train", "--set", "gamma=abc"], "agent.gamma"),
    (["train", "--set", "batch_size=3.5"], "agent.batch_size"),
    (["train", "--set", "save_replay=maybe"], "runner.save_replay"),
    (["train", "--set", "capacity=0"], "replay.capacity must be"),
    (["train", "--set", "gamma"], "expected key=value"),
    (["train", "--set", "action_set=all"], "env.action_set must be one of"),
    # conflicting options
    (["train", "--set", "epsilon_start=0.5", "--set", "epsilon_end=0.9"], "epsilon_end must be <= agent.epsilon_start"),
    (["train", "--stages", "1-1", "--world", "1"], "cannot be combined"),
    (["train", "--resume", "{run}", "--seed", "3"], "only --steps may change"),
    (["train", "--resume", "{run}", "--set", "gamma=0.9"], "only --steps may change"),
    (["train", "--resume", "{run}", "--steps", "100"], "is already at step 150"),
    (["train", "--resume", "{run}"], "is already at step 150 of 150"),
    (["play", "{run}", "--video-dir", "{root}/videos"], "--video-dir only applies with --record"),
    # paths: missing, not a run, not a checkpoint, a file
    (["train", "--resume", "/nonexistent/run"], "/nonexistent/run/config.json is missing"),
    (["train", "--resume", "{run}/checkpoints/step-000000000150"], "holds no complete checkpoint"),
    (["train", "--resume", "{file}"], "is a file"),
    (["train", "--save-dir", "{file}", "--name", "x"], "cannot create"),
    (["evaluate", "/nonexistent/run"], "/nonexistent/run does not exist"),
    (["evaluate", "{other}"], "holds no complete checkpoint"),
    (["evaluate", "{file}"], "holds no complete checkpoint"),
    (["evaluate", "{half}"], "is incomplete (no COMPLETE marker)"),
    (["play", "/nonexistent/run"], "does not exist"),
    (["play", "{run}", "--record", "--video-dir", "{file}"], "is a file"),
    # existing runs are never replaced by accident
    (["train", "--save-dir", "{root}", "--name", "run"], "already exists"),
    (["train", "--save-dir", "{root}", "--name", "other", "--force"], "refusing to replace"),
    (["train", "--name", "a/b"], "bad run name"),
    # evaluate / play options
    (["evaluate", "x", "--episodes", "0"], "is not in the range x>=1"),
    (["evaluate", "x", "--epsilon", "2"], "2.0 is not in the range"),
    (["evaluate", "{run}", "--seed", "abc"], "is not a valid integer"),
    (["evaluate", "--stage", "8-4"], "no shipped agent for stage 8-4 yet"),  # without PATH: the stage's shipped one
    (["play", "{run}", "--episodes", "-1"], "is not in the range x>=1"),
    (["play", "{run}", "--epsilon", "-0.5"], "is not in the range"),
    (["evaluate", "{run}", "--stage", "9-1"], "--stage: bad stage '9-1': world must be 1-8"),
    (["play", "{run}", "--stage", "1"], "--stage: bad stage '1'"),
    (["nonsense"], "No such command"),
]


@pytest.fixture(scope="module")
def bad_input_world(base) -> dict[str, Path]:
    """The existing run plus the odd paths the table refers to, all beside it."""
    root = base.parent
    (root / "notes.txt").write_text("not a run\n")
    (root / "other").mkdir(exist_ok=True)
    (root / "other" / "keep.txt").write_text("precious\n")
    (root / "half").mkdir(exist_ok=True)
    (root / "half" / "state.json").write_text("{}")
    return {"run": base, "root": root, "file": root / "notes.txt", "other": root / "other", "half": root / "half"}


@pytest.mark.parametrize("args,message", BAD_INPUT, ids=[" ".join(a)[:60] for a, _ in BAD_INPUT])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(bad_input_world, tmp_path, args, message):
    places = {k: str(v) for k, v in bad_input_world.items()}
    args = [a.format(**places) for a in args]
    scratch, fresh = tmp_path / "cwd", tmp_path / "runs"
    scratch.mkdir()
    fresh.mkdir()
    if args[0] == "train" and "--resume" not in args and "--save-dir" not in args:
        args += ["--save-dir", str(fresh)]
    before = hashes(bad_input_world["root"])
    out = run_cli(*args, cwd=scratch, timeout=120)
    line = assert_one_line_refusal(out)
    assert message in line, line
    assert hashes(bad_input_world["root"]) == before, "a refused command changed existing files"
    assert not list(scratch.iterdir()) and not list(fresh.iterdir()), "a refused command created files"


def test_the_bad_input_table_is_broad():
    commands = {args[0] for args, _ in BAD_INPUT}
    assert len(BAD_INPUT) >= 25 and {"train", "play", "evaluate"} <= commands
    assert sum("--set" in args for args, _ in BAD_INPUT) >= 8
