"""What a campaign costs beside the trials it runs: a plain ``train`` of N steps, then a
campaign of one trial of the same N steps on a local Ray, timed and measured.

    python benchmarks/campaign_bench.py [--steps 300] [--envs 1] [--nodes 2]

Prints, for each: wall seconds; for the campaign also the driver process's own CPU
seconds and peak RSS (MB), and the peak RSS of Ray's own processes (GCS, raylet, the
trial's worker; not the trainer, which is the same process as in ``train``). The
difference of the wall seconds is the overhead per trial (Ray's start is paid once
per campaign, the rest per trial). With ``--nodes 2`` it then runs two trials on a
simulated 2-node cluster (``ray.cluster_utils.Cluster``) and prints the node of each,
which shows trials really spread over nodes. The trials are tiny (the test suite's
settings): a longer N only adds training time to both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ["learning_starts=100", "capacity=1000", "eval_every=0", "max_episode_steps=100", "target_update_period=10",
        "batch_size=8", "policy_average_steps=0", "checkpoint_every=100", "keep_checkpoints=2"]
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, own CPU seconds, RSS pages) of ``pid``, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, int(fields[21])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _descendants(root: int) -> dict[int, int]:
    """Every process under ``root``, with its parent."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat[0]
    found, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found[child] = pid
                frontier.append(child)
    return found


def watched(argv: list[str]) -> dict[str, float]:
    """Run ``argv``; wall seconds, its own CPU seconds and peak RSS, and the peak RSS of
    the processes under it that are not a trainer (nor under one)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    own_cpu, own_rss, others_rss = 0.0, 0, 0
    while proc.poll() is None:
        stat = _stat(proc.pid)
        if stat is not None:
            own_cpu, own_rss = stat[1], max(own_rss, stat[2])
        tree = _descendants(proc.pid)
        trainers = {pid for pid in tree if " train " in _cmdline(pid) or "mario_dqn.time_to_solve" in _cmdline(pid)}
        under = {pid for pid in tree if pid not in trainers and not _under(pid, trainers, tree)}
        others_rss = max(others_rss, sum((_stat(pid) or (0, 0, 0))[2] for pid in under))
        time.sleep(0.2)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(argv[1:3])} failed: {proc.stderr.read()[-500:]}")
    return {"wall_s": wall, "own_cpu_s": own_cpu, "own_peak_mb": own_rss * PAGE_MB, "ray_peak_mb": others_rss * PAGE_MB}


def _under(pid: int, ancestors: set[int], tree: dict[int, int]) -> bool:
    while pid in tree:
        pid = tree[pid]
        if pid in ancestors:
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--envs", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=0, help="also run 2 trials on a simulated cluster of this many nodes")
    args = parser.parse_args()
    sets = [arg for item in TINY for arg in ("--set", item)]
    common = ["--steps", str(args.steps), "--envs", str(args.envs), *sets]
    with tempfile.TemporaryDirectory() as tmp:
        train = watched([sys.executable, str(ROOT / "main.py"), "train", "--world", "1", "--stage", "1", "--seed", "0",
                         "--save-dir", tmp, "--name", "plain", "--no-progress", *common])
        campaign = watched([sys.executable, str(ROOT / "main.py"), "campaign", "--stages", "1-1", "--seeds", "0",
                            "--save-dir", tmp, "--name", "one", "--solve-episodes", "0", *common])
        print(f"plain train, {args.steps} steps: {train['wall_s']:.1f} s wall")
        print(f"campaign of that one trial: {campaign['wall_s']:.1f} s wall "
              f"(+{campaign['wall_s'] - train['wall_s']:.1f} s); driver process {campaign['own_cpu_s']:.1f} CPU s, "
              f"peak {campaign['own_peak_mb']:.0f} MB; Ray's processes peak {campaign['ray_peak_mb']:.0f} MB")
        if args.nodes:
            print(json.dumps(spread(Path(tmp), args.nodes, args.steps, args.envs)))


def spread(tmp: Path, nodes: int, steps: int, envs: int) -> dict[str, str]:
    """Two trials on a simulated cluster of ``nodes`` nodes of envs + 1 CPUs each: the node of each trial."""
    from ray.cluster_utils import Cluster

    from mario_dqn import campaign as K

    small = {"object_store_memory": 80 * 1024**2, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, **small})
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=envs + 1, **small)
        plan, _ = K.make_plan("1-1", "0,1", steps=steps, envs=envs, sets=TINY, solve_episodes=0)
        K.run(plan, tmp / "spread", address=cluster.address, log=lambda line: None)
        return {t.name: json.loads((tmp / "spread" / K.LOG_DIR / f"{t.name}.attempts.jsonl").read_text()
                                   .splitlines()[0])["node"][:8] for t in plan.trials}
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
