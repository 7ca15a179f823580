"""Stop signals sent the way users send them: to the whole process group.

A terminal's Ctrl-C, ``timeout`` and a closed terminal signal every process of the
foreground group, the env workers included. Each test starts the real CLI in its own
session (so the group is just that run) and signals it with ``os.killpg``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import ROOT, children, concurrently, running, start, wait_for, wait_for_emulator
from tests.test_runner import TINY, assert_same_checkpoints, cli, metrics_rows, tensorboard_scalars

# 4 envs (the default): the workers are separate processes in the signalled group.
COMMON = ("--envs", "4", "--set", "checkpoint_every=100", "--set", "keep_checkpoints=2", *TINY,
          "--set", "max_episode_steps=30")
TARGET = 400
"""Signalled runs stop after their first episodes (step ~120) and resume to here."""
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def logged_episodes(run: Path) -> bool:
    metrics = run / "metrics.csv"
    return metrics.exists() and metrics.read_text().count("\n") >= 2


def assert_clean(stderr: str) -> None:
    assert "Traceback" not in stderr and "Error" not in stderr and "error" not in stderr, stderr[-3000:]


@dataclass
class Stopped:
    """What a run signalled once its first episodes were logged left behind."""

    run: Path
    proc: subprocess.Popen
    out: str
    err: str
    workers: list[int]
    """Its env workers while it ran."""
    left: list[int]
    """Its env workers still running 10 s after it exited (none, after a signal or SIGKILL)."""


def signalled(root: Path, sig: signal.Signals | None) -> Stopped:
    """Start a run in its own session, and once it has logged its first episodes send
    ``sig`` to its group ten times (a held key, an impatient user: the first is the one
    that counts; the others must not cut the checkpoint write short), or with None
    SIGKILL its main process alone."""
    run = root / "run"
    proc = start("train", "--steps", "100000", "--save-dir", str(root), "--name", "run", *COMMON)
    try:
        wait_for(lambda: logged_episodes(run), "the first episodes")
        workers = children(proc.pid)
        if sig is None:
            proc.kill()  # SIGKILL to the main process alone: nothing of ours runs in it any more
            out, err = proc.communicate(timeout=30)
        else:
            os.killpg(proc.pid, sig)
            for _ in range(10):
                time.sleep(0.02)
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
            out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # The workers seen while it ran, not children(proc.pid) now: once the run is reaped its
    # leftovers belong to init, so that list would always be empty.
    deadline = time.time() + 10
    while any(running(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.05)
    left = [pid for pid in workers if running(pid)]
    return Stopped(run, proc, out, err, workers, left)


KILLED = "SIGKILL to the main process"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path | Stopped]:
    """At once (:func:`concurrently`, independent processes): an uninterrupted run to
    TARGET with the signalled runs' settings ("straight"), one run stopped by each group
    signal (by its name) and one whose main process is killed (KILLED)."""

    def straight_run() -> Path:
        root = tmp_path_factory.mktemp("straight")
        out = cli("train", "--steps", str(TARGET), "--save-dir", str(root), "--name", "straight", *COMMON)
        assert out.returncode == 0, out.stderr[-2000:]
        return root / "straight"

    stops = {sig.name: sig for sig in SIGNALS} | {KILLED: None}
    roots = {name: tmp_path_factory.mktemp(name.split()[0]) for name in stops}
    made = concurrently(straight_run, *(lambda name=name: signalled(roots[name], stops[name]) for name in stops))
    return {"straight": made[0], **dict(zip(stops, made[1:]))}


@pytest.fixture(scope="module")
def straight(runs) -> Path:
    return runs["straight"]


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_group_signal_checkpoints_and_resumes_exactly(runs, sig):
    """Each signal stops the run once, with one checkpoint, and no worker left. Which signal
    it was does not reach the checkpoint (one code path writes it), so the exact resume is
    checked once, after Ctrl-C's SIGINT, the one users send most."""
    from mario_dqn.checkpoint import latest_checkpoint, load_checkpoint

    stopped, straight = runs[sig.name], runs["straight"]
    run, proc, out, err = stopped.run, stopped.proc, stopped.out, stopped.err
    assert proc.returncode == 128 + sig, err[-3000:]
    assert_clean(err)
    assert err.count("still writing the checkpoint") == 1, err
    lines = [line for line in out.splitlines() if line.startswith("stopped by")]
    assert len(lines) == 1 and lines[0].startswith(f"stopped by {sig.name} at step "), out
    step = int(lines[0].split(" at step ")[1].split(";")[0])
    assert 100 < step < TARGET, "stopped after the periodic checkpoint at 100, before TARGET"
    newest = latest_checkpoint(run / "checkpoints")
    assert newest is not None and newest.name == f"step-{step:012d}" and (newest / "replay").is_dir()
    assert load_checkpoint(run).state["step"] == step
    assert len(stopped.workers) >= 4, "the four env workers were seen while it ran"
    assert not stopped.left, "no worker outlives the run"
    if sig != signal.SIGINT:
        return

    again = cli("train", "--resume", str(run), "--steps", str(TARGET), "--no-progress")
    assert again.returncode == 0, again.stderr[-2000:]
    assert metrics_rows(run) == metrics_rows(straight)
    assert tensorboard_scalars(run) == tensorboard_scalars(straight)
    same = assert_same_checkpoints(straight / "checkpoints" / f"step-{TARGET:012d}",
                                   run / "checkpoints" / f"step-{TARGET:012d}")
    assert same.state["agent"]["updates"] > 0


def test_workers_go_away_when_the_main_process_is_killed(runs):
    killed = runs[KILLED]
    assert len(killed.workers) >= 4, "the four env workers"
    assert not killed.left, "the workers exit within 10 s"


@pytest.mark.parametrize("command", ["play", "evaluate"])
def test_play_and_evaluate_stop_on_ctrl_c(straight, tmp_path, command):
    extra = ("--record", "--video-dir", str(tmp_path)) if command == "play" else ()
    proc = start(command, str(straight), "--episodes", "1000", *extra)
    if command == "play":
        wait_for(lambda: len(list(tmp_path.glob("*.mp4"))) >= 3, "a few videos")
    else:
        wait_for_emulator(proc, "the evaluation env")
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert_clean(err)
    assert err.count("\n") == 1 and err.startswith("stopped by SIGINT during episode "), err
    if command == "play":
        import imageio.v2 as imageio

        videos = sorted(tmp_path.glob("*.mp4"))
        finished = [line for line in out.splitlines() if line.startswith("episode ")]
        assert len(videos) == len(finished) + 1 and str(videos[-1]) in err, "the interrupted one is named"
        for video in videos:  # every file, the interrupted one too, is a finished mp4
            reader = imageio.get_reader(video)
            assert reader.count_frames() >= 1
            reader.close()


def test_a_stop_during_an_evaluation_leaves_it_to_the_resumed_run(tmp_path, monkeypatch):
    """The evaluation is dropped at once (it could take minutes), the checkpoint says it is
    pending, and the resumed run does it first: the record equals an unstopped run's."""
    import config as C
    from mario_dqn import runner
    from mario_dqn.checkpoint import load_checkpoint

    config = C.apply_overrides(C.Config(), [
        "num_envs=1", "total_steps=200", "learning_starts=100", "batch_size=8", "capacity=1000",
        "eval_every=100", "eval_episodes=2", "checkpoint_every=1000", "max_episode_steps=30",
        "target_update_period=10"])
    for name in ("straight", "stopped"):
        (tmp_path / name).mkdir()
    runner.Trainer(config, tmp_path / "straight", progress=False).run()

    stopped = runner.Trainer(config, tmp_path / "stopped", progress=False)
    real_evaluate = runner.evaluate

    def signalled_during(*args, **kwargs):
        stopped.stop.name = "SIGTERM"  # what the handler does when the signal comes mid-evaluation
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(runner, "evaluate", signalled_during)
    result = stopped.run()
    monkeypatch.undo()
    assert result["stopped_by"] == "SIGTERM" and result["step"] == 100
    assert load_checkpoint(tmp_path / "stopped").state["eval_pending"] is True
    assert not [row for row in metrics_rows(tmp_path / "stopped") if row["kind"] == "eval"]

    resumed = runner.Trainer(config, tmp_path / "stopped", progress=False)
    resumed.restore(load_checkpoint(tmp_path / "stopped"))
    assert resumed.run()["stopped_by"] is None
    rows = metrics_rows(tmp_path / "stopped")
    assert [int(row["step"]) for row in rows if row["kind"] == "eval"] == [100, 200]
    assert rows == metrics_rows(tmp_path / "straight")


def test_a_sigint_while_a_background_job_starts_is_not_lost(tmp_path):
    """`main.py train ... &` in a script: a non-interactive shell starts background jobs
    with SIGINT ignored, so until a handler of ours exists a SIGINT is dropped, not
    delayed. One sent as soon as the run directory exists (TensorFlow still loading)
    stops the run before its first step, with a checkpoint that resumes."""
    from mario_dqn.checkpoint import load_checkpoint

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "train", "--steps", "300", "--save-dir", str(tmp_path), "--name",
         "run", "--no-progress", *COMMON], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # what `&` in a script does
    try:
        first = proc.stdout.readline()
        assert first.startswith("run directory:"), first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, (out, err[-3000:])
    assert_clean(err)
    assert "stopped by SIGINT at step 0;" in out, out
    assert load_checkpoint(tmp_path / "run").state["step"] == 0
    again = cli("train", "--resume", str(tmp_path / "run"), "--steps", "100", "--no-progress")
    assert again.returncode == 0, again.stderr[-2000:]
    assert load_checkpoint(tmp_path / "run").state["step"] == 100
