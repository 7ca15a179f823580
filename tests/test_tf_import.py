"""TensorFlow's one import path (mario_dqn.tf_import): quiet, and oneDNN on by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = ("from mario_dqn.tf_import import import_tensorflow; import_tensorflow(); "
         "from tensorflow.python.util import _pywrap_util_port as port; print(port.IsMklEnabled())")


@pytest.mark.parametrize("setting,enabled", [(None, "True"), ("0", "False")])
def test_onednn_kernels_are_on_unless_the_user_turns_them_off(setting: str | None, enabled: str) -> None:
    """TensorFlow leaves oneDNN off on CPUs without AVX-512-class features (like the
    reference machine), where it makes the learning step ~1.3x cheaper."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [enabled]
