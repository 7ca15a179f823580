"""Stop signals: the main process owns shutdown, env worker processes ignore them.

A terminal sends Ctrl-C (SIGINT) to its whole foreground process group, and
``timeout``, schedulers and a closed terminal (SIGHUP) signal the group too, so the env
worker processes receive the same signal as ``main.py``. If a worker acted on it, it
would die mid-step and take the run with it before the main process could write its
checkpoint. So workers ignore these signals, and the main process, which does handle
them, closes the workers itself once its checkpoint is written. Workers still go away
when the main process is killed outright (SIGKILL): their command pipe then reads
end-of-file, and Gymnasium's worker loop exits.

Why the signals are *blocked* while workers start: a worker is a fresh interpreter
(the ``spawn`` start method), and a signal that arrives before its first line of our
code runs would hit Python's default handlers. A blocked mask is inherited through
fork and exec, so the signal stays pending until the worker has set ``SIG_IGN``, which
discards it. The main process still receives it (other threads of it do not block it).
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType
from typing import Iterator

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""What stops a run: Ctrl-C, ``kill``/``timeout``/schedulers, a closed terminal."""


def exit_code(name: str) -> int:
    """The shell's exit status for a process stopped by signal ``name``: 128 + its number
    (SIGINT 130, SIGTERM 143, SIGHUP 129)."""
    return 128 + int(signal.Signals[name])


@contextlib.contextmanager
def blocked_while_spawning() -> Iterator[None]:
    """Block the stop signals in this thread while child processes are started in it,
    so they start with the signals blocked (see the module docstring)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def ignore_in_worker() -> None:
    """Make this (worker) process ignore the stop signals, then unblock them.

    Setting ``SIG_IGN`` discards any that arrived while they were blocked.
    """
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def exit_with_parent() -> None:
    """In a pool worker (a ``multiprocessing`` child): end this process as soon as its
    parent is gone, however the parent died.

    Why: unlike an env worker, a ``ProcessPoolExecutor`` worker does not notice: it
    finishes the task it holds and then waits on its task queue, whose write end it holds
    itself, for ever. The harness killed with a plain ``kill`` (SIGTERM to it alone, not
    its group) left its worker evaluating the rest of its model's episodes beside the
    training runs, and then idle with a network and an emulator in memory. ``multiprocessing``
    gives a child its parent's sentinel, which becomes ready when the parent exits; a
    daemon thread waits on it. Call it first in the pool's initializer.
    """
    import multiprocessing
    import threading
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class StopRequest:
    """Records the first stop signal instead of raising; the loop polls :attr:`name`.

    Use as a context manager around the loop *and* what it must finish (the final
    checkpoint, a video file): a second signal meanwhile is only acknowledged on stderr
    (with ``os.write``, which is safe wherever the handler interrupts), never allowed to
    cut that work short. Nothing is interrupted mid-step either: an exception raised
    inside the emulator or a half-written frame is what this avoids. The previous
    handlers come back on exit.

    Re-entrant: the CLI enters it before the slow start (TensorFlow's import, restoring
    a replay memory) and the loop enters it again; only the outermost ``with`` installs
    and restores the handlers. Why the start counts: a job started in the background by
    a non-interactive shell begins with SIGINT *ignored*, so a Ctrl-C-like SIGINT sent
    before any handler of ours exists would be lost, not just early.
    """

    def __init__(self, finishing: str = "writing the checkpoint") -> None:
        self.name: str | None = None
        self._note = f"\nstill {finishing}; it stops when that is done\n".encode()
        self._previous: dict[signal.Signals, object] = {}
        self._depth = 0
        self._tty_fds = terminal_fds()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.name is not None:
            if self._note:  # said once: a held-down Ctrl-C should not fill the screen
                with contextlib.suppress(OSError):
                    os.write(2, self._note)
                self._note = b""
            return
        self.name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            detach_from_terminal(self._tty_fds)

    def __enter__(self) -> StopRequest:
        if self._depth == 0:
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]


def terminal_fds() -> list[int]:
    """Which of stdout/stderr are a terminal, asked up front: once the terminal has hung
    up, ``isatty`` on it fails too."""
    return [fd for fd in (1, 2) if os.isatty(fd)]


def detach_from_terminal(fds: list[int]) -> None:
    """After SIGHUP the terminal may be gone, and writing to it fails with EIO: point
    ``fds`` (the ones that were a terminal) at /dev/null, as ``nohup`` does, so the
    checkpoint is still written and nothing fails on a last progress-bar line."""
    if not fds:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)
