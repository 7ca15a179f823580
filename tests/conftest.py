"""Shared test setup: quiet TensorFlow, project root importable."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# TensorFlow loads through the project's one import path, whichever test module imports
# it first, so every test runs with the settings (oneDNN on) that the CLI uses.
from mario_dqn.tf_import import import_tensorflow  # noqa: E402

import_tensorflow()
