"""Fault injection: SIGKILL `train` at random moments, then check the run survives.

Each trial starts `main.py train` (tiny config, a checkpoint every 50 agent steps,
keeping 2) in its own process group and kills the whole group with SIGKILL, the way
a power cut or the OOM killer would end it:
  random        at a random time after launch (which may fall before the first
                checkpoint, during one, during pruning, or anywhere in the loop), or with
                ``from_checkpoint`` a random time after the first complete checkpoint;
  during-write  a random 0-150 ms after the 2nd or 3rd checkpoint's `.tmp-*` directory
                appears, while it is still there (when a write ends before its delay, the
                next one is tried with half the delay), so the kill lands inside the write.
Each trial records the newest complete checkpoint just before the kill and whether the
kill landed inside a write: the writer's `.tmp-*` directory is still there after the
SIGKILL (the writer renames it only once the checkpoint is whole, and a killed writer
cleans nothing up).
After the kill, the newest complete checkpoint must load with `load_checkpoint`, and
`train --resume RUN --steps N` (N = that checkpoint's step + 100) must exit 0 with
`checkpoints/latest` and the final state.json at step N, no `.tmp-*` leftovers, no
incomplete `step-*` directory, at most 2 checkpoints kept and metrics.csv in step
order. A kill before the first checkpoint leaves nothing to resume: then `--resume`
must refuse with one line on stderr and exit code 2, and the trial counts as handled
(reported as `no checkpoint yet`).

Prints one line per trial, then `name: value unit` lines, among them
`fault_injection.trials_survived`. The test suite runs a reduced form of this
(tests/test_reliability.py imports run_trials).
Run: .venv/bin/python benchmarks/fault_injection.py [--trials 20] [--seed 0] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent

TINY = ["--no-progress", "--set", "learning_starts=100", "--set", "capacity=1000", "--set", "eval_every=0",
        "--set", "max_episode_steps=100", "--set", "target_update_period=10", "--set", "batch_size=8"]
"""The tiny config of these trials and of the test suite's CLI runs (tests/test_runner.py and
tests/test_reliability.py add to it): a run of a few hundred steps."""

CHECKPOINT_EVERY = 50
KEEP = 2
RESUME_EXTRA = 100
"""Resume this many steps past the surviving checkpoint: one periodic save (and prune)
and the final one, so the resumed run proves it can write and prune again."""

NOISE = ("cuda", "absl", "onednn", "cpu_feature_guard", "computation_placer", "warning: all log messages",
         "tensorflow/core", "tf_gpu_allocator")
"""Lines TensorFlow and absl may print on stderr before mario-dqn has a say; they are
not mario-dqn's output and the one-line-error promise does not cover them."""


def error_lines(stderr: str) -> list[str]:
    """mario-dqn's own stderr lines: blank lines and TensorFlow/absl start-up noise dropped."""
    return [line for line in stderr.splitlines()
            if line.strip() and not any(word in line.lower() for word in NOISE)]


def cli_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def run_cli(*args: str, timeout: float = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python main.py ARGS` in a fresh process, as a user would run it."""
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class Trial:
    index: int
    mode: str
    killed_at_s: float = 0.0
    killed_mid_write: bool = False
    """The kill left a checkpoint write's ``.tmp-*`` directory: it landed inside the write."""
    checkpoint_before_kill: str | None = None
    """The newest complete checkpoint just before the kill (None: there was none yet)."""
    checkpoint: str | None = None
    resumed_to: int | None = None
    survived: bool = False
    note: str = ""

    def line(self) -> str:
        where = self.checkpoint or "no checkpoint yet"
        status = "survived" if self.survived else "FAILED"
        mid = ", mid-write" if self.killed_mid_write else ""
        return (f"trial {self.index:2d} [{self.mode}]: killed at {self.killed_at_s:.1f}s{mid}; {where}; "
                f"{status}{': ' + self.note if self.note else ''}")


def _tmp_dirs(checkpoints: Path) -> list[Path]:
    try:
        return [p for p in checkpoints.iterdir() if p.name.startswith(".tmp-")]
    except OSError:
        return []


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the trainer and its env processes at once (they share its new session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _newest(checkpoints: Path) -> str | None:
    from mario_dqn import checkpoint as ckpt

    newest = ckpt.latest_checkpoint(checkpoints) if checkpoints.is_dir() else None
    return newest.name if newest is not None else None


@dataclass
class Kill:
    """What :func:`_kill` saw: seconds since launch, the newest complete checkpoint just
    before the kill, whether the kill left a write's ``.tmp-*`` directory, a note when no
    kill of the mode happened."""

    at_s: float
    before: str | None = None
    mid_write: bool = False
    note: str = ""


def _kill_now(proc: subprocess.Popen, checkpoints: Path, started: float) -> Kill:
    before = _newest(checkpoints)
    _kill_group(proc)
    return Kill(time.monotonic() - started, before, bool(_tmp_dirs(checkpoints)))


def _kill(proc: subprocess.Popen, run: Path, mode: str, rng: random.Random, window: tuple[float, float],
          deadline_s: float, from_checkpoint: bool = False) -> Kill:
    """Wait for the moment of ``mode`` and kill (see the module docstring)."""
    started = time.monotonic()
    checkpoints = run / "checkpoints"

    def alive() -> bool:
        return time.monotonic() - started < deadline_s and proc.poll() is None

    if mode == "random":
        while from_checkpoint and alive() and _newest(checkpoints) is None:
            time.sleep(0.01)
        if alive():
            time.sleep(rng.uniform(*window))
        if proc.poll() is not None:
            return Kill(time.monotonic() - started, note=f"trainer exited by itself (code {proc.returncode})")
        return _kill_now(proc, checkpoints, started)
    target = rng.choice((2, 3))  # a write with an earlier complete checkpoint beside it
    delay = rng.uniform(0.0, 0.15)
    seen: set[str] = set()
    while alive():
        fresh = [tmp for tmp in _tmp_dirs(checkpoints) if tmp.name not in seen]
        seen.update(tmp.name for tmp in fresh)
        if fresh and len(seen) >= target:
            due = time.monotonic() + delay
            while time.monotonic() < due and fresh[0].exists():
                time.sleep(0.002)
            if fresh[0].exists():
                return _kill_now(proc, checkpoints, started)
            delay /= 2  # that write ended first: the next one, sooner
        time.sleep(0.002)
    _kill_group(proc)
    return Kill(time.monotonic() - started, note=f"no checkpoint write caught in {deadline_s:.0f}s")


def _check_resumed(run: Path, target: int) -> str:
    """'' when the resumed run ended where it should; else what is wrong."""
    from mario_dqn import checkpoint as ckpt

    checkpoints = run / "checkpoints"
    latest = (checkpoints / "latest").read_text().strip()
    if latest != ckpt.step_name(target):
        return f"checkpoints/latest names {latest}, expected {ckpt.step_name(target)}"
    final = ckpt.latest_checkpoint(checkpoints)
    if final is None or final.name != ckpt.step_name(target):
        return f"newest complete checkpoint is {final}"
    step = ckpt.read_state(final / "state.json")["step"]
    if step != target:
        return f"final state.json step {step}, expected {target}"
    leftovers = _tmp_dirs(checkpoints) + [p for p in checkpoints.glob(f"{ckpt.PREFIX}*")
                                           if not ckpt.is_complete(p)]
    if leftovers:
        return f"leftovers after resume: {', '.join(p.name for p in leftovers)}"
    kept = ckpt.list_checkpoints(checkpoints)
    if len(kept) > KEEP:
        return f"{len(kept)} checkpoints kept, expected at most {KEEP}"
    with open(run / "metrics.csv", newline="") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    if steps != sorted(steps) or (steps and steps[-1] > target):
        return "metrics.csv rows are out of step order after resume"
    return ""


def run_trial(root: Path, index: int, mode: str, rng: random.Random,
              window: tuple[float, float] = (2.0, 18.0), timeout: float = 300,
              from_checkpoint: bool = False) -> Trial:
    """One kill-and-resume trial in ``root``/trialNN; see the module docstring."""
    from mario_dqn import checkpoint as ckpt

    name = f"trial{index:02d}"
    run = root / name
    trial = Trial(index, mode)
    with open(root / f"{name}.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "train", "--save-dir", str(root), "--name", name,
             "--steps", "1000000", "--envs", "1", "--set", f"checkpoint_every={CHECKPOINT_EVERY}",
             "--set", f"keep_checkpoints={KEEP}", *TINY],
            cwd=ROOT, env=cli_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            kill = _kill(proc, run, mode, rng, window, timeout, from_checkpoint)
            trial.killed_at_s, trial.killed_mid_write, trial.note = kill.at_s, kill.mid_write, kill.note
            trial.checkpoint_before_kill = kill.before
        finally:
            if proc.poll() is None:
                _kill_group(proc)
    if trial.note:
        return trial

    newest = ckpt.latest_checkpoint(run / "checkpoints")
    if newest is None:
        out = run_cli("train", "--resume", str(run), "--steps", str(RESUME_EXTRA), "--no-progress",
                      timeout=timeout)
        lines = error_lines(out.stderr)
        trial.survived = out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr
        trial.note = ("resume refused with one line, exit 2" if trial.survived else
                      f"resume of a run without checkpoint: exit {out.returncode}, stderr {out.stderr[-300:]!r}")
        return trial
    trial.checkpoint = newest.name
    try:
        loaded = ckpt.load_checkpoint(newest)
    except ckpt.CheckpointError as err:
        trial.note = f"newest complete checkpoint does not load: {err}"
        return trial
    target = int(loaded.state["step"]) + RESUME_EXTRA
    out = run_cli("train", "--resume", str(run), "--steps", str(target), "--no-progress", timeout=timeout)
    if out.returncode != 0:
        trial.note = f"resume exited {out.returncode}: {' | '.join(error_lines(out.stderr)[-3:])}"
        return trial
    if f"from {newest.name}" not in out.stdout:
        trial.note = f"resume did not start from {newest.name}: {out.stdout[:200]!r}"
        return trial
    trial.note = _check_resumed(run, target)
    trial.survived = not trial.note
    trial.resumed_to = target
    return trial


def schedule(trials: int) -> list[str]:
    """Every third trial kills inside a checkpoint write (the first one among them)."""
    return ["during-write" if i % 3 == 0 else "random" for i in range(trials)]


def run_trials(trials: int, root: Path, seed: int = 0, modes: list[str] | None = None,
               window: tuple[float, float] = (2.0, 18.0), keep_runs: bool = False,
               log: Callable[[str], None] = print, from_checkpoint: bool = False) -> list[Trial]:
    """``trials`` trials (``modes``, default :func:`schedule`); ``from_checkpoint``: a
    random kill's ``window`` starts once the run has a complete checkpoint."""
    rng = random.Random(seed)
    results = []
    for index, mode in enumerate(modes or schedule(trials)):
        try:
            trial = run_trial(root, index, mode, rng, window, from_checkpoint=from_checkpoint)
        except subprocess.TimeoutExpired as err:
            trial = Trial(index, mode, note=f"timed out: {' '.join(map(str, err.cmd[2:]))}")
        results.append(trial)
        log(trial.line())
        if not keep_runs:
            shutil.rmtree(root / f"trial{index:02d}", ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill moments.")
    parser.add_argument("--workdir", type=Path, help="Where runs go (default: a temporary directory).")
    parser.add_argument("--keep-runs", action="store_true", help="Keep each trial's run directory.")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="mario-fault-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = run_trials(args.trials, root, args.seed, keep_runs=args.keep_runs)
    survived = sum(t.survived for t in results)
    print(f"fault_injection.trials: {len(results)} trials")
    print(f"fault_injection.trials_survived: {survived} trials")
    print(f"fault_injection.killed_mid_write: {sum(t.killed_mid_write for t in results)} trials")
    print(f"fault_injection.killed_before_first_checkpoint: "
          f"{sum(t.survived and t.checkpoint is None for t in results)} trials")
    print(f"fault_injection.wall_time: {time.perf_counter() - started:.0f} s")
    if args.workdir is None and not args.keep_runs:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if survived == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
