"""The package's own errors: what a user can cause or must act on, each one line long.

The command line (``main.py``) maps them to ``error: <message>`` and the exit code they
carry; the package never raises click's exceptions, so it runs the same under a
notebook, a benchmark or a campaign worker. Errors of other layers keep their own
classes (``config.ConfigError``, ``mario_dqn.checkpoint.CheckpointError``, ...), which
the command line maps the same way.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


class MarioDQNError(Exception):
    """Base of the package's errors: ``str(err)`` is the one line to show."""

    exit_code = 2
    """The command line's exit code for it: 2, click's code for usage errors, unless a
    subclass says otherwise."""


class UserInputError(MarioDQNError):
    """A refusal of what was asked (an option that does not apply, a stage that does not
    exist, nothing to resume), made before anything was changed."""


class RunDirError(UserInputError):
    """The run directory refuses: a run of that name exists (and no --force), it is not a
    mario-dqn run, or it cannot be created."""


class RunWriteError(MarioDQNError):
    """Training stopped on a failed write (disk full, an unwritable directory): the command
    was right and the machine was not, hence exit code 1. The message says what is intact
    and how to continue."""

    exit_code = 1


def one_line(message: str) -> str:
    """``message`` on one line: errors are promised to be one line, and messages that quote
    an OS, numpy or TensorFlow error can carry newlines."""
    return " ".join(message.split())


_TF_FUNCTION_PREFIX = re.compile(r"\{\{.*?\}\}")
"""TensorFlow's ``{{function_node ...}}`` prefix of an op error's message."""


def tensorflow_write_error(err: BaseException, run_dir: Path) -> str | None:
    """The failed write ``err`` reports, as one line, when it is a TensorFlow op error that
    names ``run_dir`` (TensorBoard's writer raises these, not OSError: a full disk is a
    ResourceExhaustedError naming the events file); else None.

    Looked up in ``sys.modules`` so that asking never imports TensorFlow.
    """
    tf_errors = sys.modules.get("tensorflow.python.framework.errors_impl")
    if tf_errors is None or not isinstance(err, tf_errors.OpError) or str(run_dir) not in str(err.message):
        return None
    return one_line(_TF_FUNCTION_PREFIX.sub("", str(err.message)))
