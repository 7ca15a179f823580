"""Shared test setup: quiet TensorFlow, and the order `make test` hands files to its two
workers in. The project is importable because `make` installs it into .venv (editable,
pyproject.toml); no test edits sys.path."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# TensorFlow loads through the project's one import path, whichever test module imports
# it first, so every test runs with the settings (oneDNN on) that the CLI uses.
from mario_dqn.tf_import import import_tensorflow  # noqa: E402

import_tensorflow()

SLOWEST_FIRST = ("test_runner.py", "test_campaign.py", "test_distill.py", "test_pretrained.py", "test_signals.py",
                 "test_reliability.py")
"""The longest test files, longest first (test_runner ~7-9 min, test_campaign ~4, the
others ~2 each, measured one file at a time). `make test` runs two files at once
(pytest-xdist, --dist loadfile --no-loadscope-reorder), each worker taking the next
file when it has nearly finished its own: the longest first, so test_runner overlaps
every other file and the last ones are short."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker (whose collection order is the order files are handed out), the
    slowest files first; a stable sort, so the other files and each file's tests keep
    their order. A run in one process keeps pytest's order."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    rank = {name: position for position, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOWEST_FIRST)))
