"""`make bench`: run every benchmark script in this folder, one after another.

Each script is standalone and prints `name: value unit` lines; running them in
separate processes keeps one benchmark's threads and caches from skewing another.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["env_throughput.py", "replay_bench.py", "agent_bench.py", "training_bench.py"]


def main() -> int:
    failed = []
    for name in SCRIPTS:
        path = HERE / name
        if not path.exists():
            continue
        print(f"== {name}", flush=True)
        if subprocess.call([sys.executable, str(path)]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
