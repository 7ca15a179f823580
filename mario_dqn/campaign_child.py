"""A trial's child process, set up in Python after exec rather than in a ``preexec_fn``.

``python -m mario_dqn.campaign_child PARENT_PID SCRIPT ARGS...`` (or ``... PARENT_PID -m
MODULE ARGS...``) runs the script or module as ``python SCRIPT ARGS`` would, after:

* ``PR_SET_PDEATHSIG``: the child gets SIGKILL when the Ray worker that started it dies
  (with its node), so no orphan trainer keeps writing the run; if that worker died
  already (its pid is no longer our parent), it exits at once;
* giving back the stop signals: a Ray worker runs with SIGINT ignored and blocked, both
  inherited through fork and exec, so the trainer would never see the SIGINT that asks it
  to stop with its checkpoint (nor Python's KeyboardInterrupt while it starts).

Doing this in a ``preexec_fn`` instead can deadlock: the Ray worker has threads, and
Python's documentation warns that code between fork and exec in a threaded process may
hang on a lock another thread held. A stop signal sent while this runs stays pending
(it is blocked) and arrives when it is unblocked, after the handlers are set.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1


def _dies_with(parent: int) -> None:
    """SIGKILL when ``parent`` dies; exit now if it died before we asked."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:
        os._exit(1)


def _stop_signals_back() -> None:
    """SIGINT raises KeyboardInterrupt as in any Python program; SIGTERM and SIGHUP end it
    (the trainer installs its own handlers over these); then all three are unblocked."""
    from mario_dqn.signals import STOP_SIGNALS

    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def main(argv: list[str]) -> None:
    """``argv``: the parent's pid, then ``SCRIPT ARGS...`` or ``-m MODULE ARGS...``."""
    parent, *command = argv
    _dies_with(int(parent))
    _stop_signals_back()
    if command[0] == "-m":
        sys.argv = command[1:]
        runpy.run_module(command[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = command
        runpy.run_path(command[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
