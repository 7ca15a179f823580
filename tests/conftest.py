"""Shared test setup: quiet TensorFlow. The project is importable because `make` installs
it into .venv (editable, pyproject.toml); no test edits sys.path."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# TensorFlow loads through the project's one import path, whichever test module imports
# it first, so every test runs with the settings (oneDNN on) that the CLI uses.
from mario_dqn.tf_import import import_tensorflow  # noqa: E402

import_tensorflow()
