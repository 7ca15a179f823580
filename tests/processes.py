"""Shared by the tests that drive the real CLI as a separate process group and watch it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

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


def wait_for(condition: Callable[[], object], what: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
