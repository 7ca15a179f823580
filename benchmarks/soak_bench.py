"""Soak: train for --minutes with a small replay; memory must stay flat, checkpoints at N.

Starts `main.py train` (a small replay of --capacity transitions, a checkpoint every
--checkpoint-every agent steps keeping --keep, an evaluation every --eval-every steps so
the evaluation env and the `best` checkpoint are exercised too), samples every
--interval seconds the resident memory (VmRSS) of the trainer and of all its child
processes (env workers, multiprocessing's resource tracker), the step reached
(metrics.csv) and the number of complete checkpoints kept, then stops the run with
SIGTERM (which must write a final checkpoint and exit 143).

RSS growth is measured from the buffer being full (step >= capacity: from then on the
replay's memory cannot grow) to the end of the run, each end the mean of --window
samples. Target: growth < 5%; the count of kept checkpoints stays at --keep (a sample may
catch keep + 1 in the moment between a new checkpoint's marker and the pruning of the
oldest; that is counted separately).

Prints `name: value unit` lines. Linux only (reads /proc). Not part of `make test`.
Run: .venv/bin/python benchmarks/soak_bench.py [--minutes 10] [--capacity 2000] [--envs 1] [--keep 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mario_dqn.checkpoint import list_checkpoints  # numpy only: no TensorFlow here

ROOT = Path(__file__).resolve().parent.parent


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc/*/stat's parent field)."""
    parent_of = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent_of[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [p for p, parent in parent_of.items() if parent == current]
        found += kids
        frontier += kids
    return found


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def last_step(metrics: Path) -> int:
    """The step of metrics.csv's last complete row (0 before the first episode ends)."""
    try:
        with open(metrics, "rb") as handle:
            handle.seek(max(0, os.path.getsize(metrics) - 4096))
            lines = handle.read().decode(errors="replace").splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        fields = line.split(",")
        if len(fields) > 1 and fields[1].isdigit():
            return int(fields[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--capacity", type=int, default=2000, help="Replay capacity (transitions).")
    parser.add_argument("--envs", type=int, default=1)
    parser.add_argument("--keep", type=int, default=2, help="keep_checkpoints (N).")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--eval-every", type=int, default=3000, help="0 = no evaluation.")
    parser.add_argument("--interval", type=float, default=3.0, help="Seconds between samples.")
    parser.add_argument("--window", type=int, default=3, help="Samples averaged at each end.")
    parser.add_argument("--workdir", type=Path, help="Where the run goes (default: a temporary directory).")
    args = parser.parse_args()

    root = args.workdir or Path(tempfile.mkdtemp(prefix="mario-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    run = root / "soak"
    command = [sys.executable, str(ROOT / "main.py"), "train", "--save-dir", str(root), "--name", "soak",
               "--steps", "100000000", "--envs", str(args.envs), "--no-progress",
               "--set", f"capacity={args.capacity}", "--set", f"learning_starts={min(500, args.capacity)}",
               "--set", f"checkpoint_every={args.checkpoint_every}", "--set", f"keep_checkpoints={args.keep}",
               "--set", f"eval_every={args.eval_every}", "--set", "eval_episodes=1",
               "--set", "max_episode_steps=500"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(root / "soak.log", "w")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    started = time.monotonic()
    samples: list[tuple[float, int, float, float, int, int]] = []  # t, step, total MB, trainer MB, procs, kept
    seen_checkpoints: set[str] = set()
    try:
        while time.monotonic() - started < args.minutes * 60 and proc.poll() is None:
            time.sleep(args.interval)
            pids = [proc.pid, *children(proc.pid)]
            trainer = rss_mb(proc.pid)
            total = trainer + sum(rss_mb(p) for p in pids[1:])
            kept = list_checkpoints(run / "checkpoints")
            seen_checkpoints.update(p.name for p in kept)
            samples.append((time.monotonic() - started, last_step(run / "metrics.csv"), total, trainer,
                            len(pids), len(kept)))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the trainer writes a checkpoint and closes its envs
        try:
            code = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.close()

    full = [s for s in samples if s[1] >= args.capacity]
    print(f"soak.minutes: {(time.monotonic() - started) / 60:.1f} min")
    print(f"soak.cpu_cores: {os.cpu_count()} cores")
    print(f"soak.steps: {samples[-1][1] if samples else 0} steps")
    print(f"soak.samples: {len(samples)} samples")
    print(f"soak.processes: {max((s[4] for s in samples), default=0)} processes")
    print(f"soak.checkpoints_written: {len(seen_checkpoints)} checkpoints")
    print(f"soak.stop_exit_code: {code} (expected 143: SIGTERM, checkpoint written)")
    final_kept = len(list_checkpoints(run / "checkpoints"))
    print(f"soak.kept_checkpoints_end: {final_kept} checkpoints (keep_checkpoints {args.keep})")
    over = sum(s[5] > args.keep for s in samples)
    print(f"soak.kept_checkpoints_max_sampled: {max((s[5] for s in samples), default=0)} checkpoints "
          f"({over} of {len(samples)} samples above {args.keep}, between a save and its prune)")
    ok = code == 143 and final_kept == args.keep
    if len(full) < 2 * args.window:
        print(f"soak.rss_growth_after_full: n/a (the buffer filled too late: "
              f"{len(full)} samples after step {args.capacity}; run longer)", file=sys.stderr)
        ok = False
    else:
        first, last = full[:args.window], full[-args.window:]
        for label, column in (("total", 2), ("trainer", 3)):
            a = statistics.mean(s[column] for s in first)
            b = statistics.mean(s[column] for s in last)
            print(f"soak.rss_at_full_{label}: {a:.0f} MB")
            print(f"soak.rss_end_{label}: {b:.0f} MB")
            print(f"soak.rss_growth_after_full_{label}: {(b - a) / a:.1%}")
        print(f"soak.rss_max_after_full_total: {max(s[2] for s in full):.0f} MB")
        print(f"soak.buffer_full_at: {full[0][0]:.0f} s")
        print(f"soak.measured_after_full: {full[-1][0] - full[0][0]:.0f} s")
        a = statistics.mean(s[2] for s in first)
        ok = ok and (statistics.mean(s[2] for s in last) - a) / a < 0.05
    print("soak.target_rss_growth: 5 %")
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
