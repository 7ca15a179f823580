"""Shared by the tests that drive the real CLI as a separate process group and watch it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent


def start(*args: str, env: dict[str, str | None] | None = None) -> subprocess.Popen:
    """`python main.py ARGS` in a new session, so its process group is this run alone (as
    a terminal's foreground job is) and ``os.killpg`` signals it the way a user does.
    ``env`` sets variables on top of ours; a value of None unsets one."""
    full = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.Popen([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


AT_ONCE = 5
"""Most calls :func:`concurrently` makes at once: a CLI run with TensorFlow holds ~1 GB."""


def concurrently(*calls: Callable[[], T]) -> list[T]:
    """Each call's result, in order, the calls made at once in threads (AT_ONCE at most):
    for independent subprocesses (CLI runs that write to no shared directory; reading one
    is fine), whose start-up (imports, tracing) is mostly one core's work, so two cores
    overlap them. Once all have finished, the exception of the first call (in the given
    order) that raised is raised."""
    with ThreadPoolExecutor(max_workers=min(len(calls), AT_ONCE)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def wait_for(condition: Callable[[], object], what: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def wait_for_emulator(proc: subprocess.Popen, what: str) -> None:
    """Until ``proc`` has loaded the emulator's library (its first env exists, after
    TensorFlow's start), and a second more, so a signal then arrives mid-episode."""
    maps = Path("/proc") / str(proc.pid) / "maps"
    wait_for(lambda: "nes_py/_native" in maps.read_text(), what)
    time.sleep(1)


def processes() -> list[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found.append((int(entry.name), fields[0], int(fields[1]), int(fields[2])))
    return found


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (e.g. the env workers and multiprocessing's tracker)."""
    return [child for child, _, parent, _ in processes() if parent == pid]


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    return any(state != "Z" for other, state, _, _ in processes() if other == pid)


def group_gone(pgid: int) -> bool:
    """No process of the group is left, zombies aside."""
    return not any(group == pgid and state != "Z" for _, state, _, group in processes())


def pool_workers(pid: int) -> list[int]:
    """The pool workers of process ``pid``: its children but multiprocessing's resource
    tracker (a child gone meanwhile is not a worker to watch either)."""
    def cmdline(child: int) -> bytes:
        try:
            return Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            return b"resource_tracker"
    return [child for child in children(pid) if b"resource_tracker" not in cmdline(child)]


def check_killed_alone_takes_its_workers(args: list[str], workers: int, what: str) -> None:
    """Start ``python ARGS`` in a session of its own, wait for its ``workers`` pool workers
    and 10 s more (they build their networks and start playing), SIGKILL it alone (no
    handler of ours runs), and wait for its workers to exit with it
    (mario_dqn.signals.exit_with_parent); a pool worker holds its own end of the task
    queue, so it would otherwise play its episodes on, minutes, then wait for work for ever.
    The whole group is killed at the end, so a failure leaves no worker behind."""
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: len(pool_workers(proc.pid)) >= workers or proc.poll() is not None, what, timeout=120)
        assert proc.poll() is None, proc.communicate()
        pids = pool_workers(proc.pid)
        time.sleep(10)
        assert all(running(pid) for pid in pids), f"{what} should still be playing"
        proc.kill()
        proc.wait(timeout=30)
        wait_for(lambda: not any(running(pid) for pid in pids), f"{what} to exit with their parent", timeout=20)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
