"""Import TensorFlow without its C++ start-up chatter.

On a machine without a GPU, importing TensorFlow 2.21 prints "WARNING: All log
messages before absl::InitializeLog() is called are written to STDERR" and "Could not
find cuda drivers on your machine, GPU will not be used" twice each. They come from
absl's C++ logger before TensorFlow applies ``TF_CPP_MIN_LOG_LEVEL``, so that
variable cannot silence them; on a CPU-only tool they are noise in every command's
output and make a one-line error look like four. The import runs with file
descriptor 2 pointed at /dev/null instead. A Python exception raised by the import
still propagates (its traceback is printed after stderr is restored).

``TF_CPP_MIN_LOG_LEVEL`` defaults to 3 here, for every entry point (CLI, notebook,
benchmarks): after the import, TensorFlow still reports the missing CUDA driver as a
C++ *error* when it first runs an op, which level 2 lets through. A value the user set
is kept.

``TF_ENABLE_ONEDNN_OPTS`` defaults to 1 here. TensorFlow turns its oneDNN kernels on by
itself only on CPUs with AVX-512-class features; on AVX-only CPUs they are off, and
turning them on made the learning step and end-to-end training markedly cheaper there
(README's Performance section has the same-run A/B; ``benchmarks/training_bench.py``
measures it). It must be set before TensorFlow loads, which is why it lives here; a
value the user set is kept (0 turns them off).
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

VERBOSE_LEVELS = ("0", "1")
"""``TF_CPP_MIN_LOG_LEVEL`` values under which the user asked for TensorFlow's info logs:
then nothing is hidden."""


def import_tensorflow() -> ModuleType:
    """``import tensorflow``, quietly unless the user asked for its logs; idempotent."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "") in VERBOSE_LEVELS:
        import tensorflow
        return tensorflow
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor to redirect
        import tensorflow
        return tensorflow
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow
