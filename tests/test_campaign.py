"""`main.py campaign`: trials are ordinary train runs on Ray, and none is lost when its
worker or node dies (the restarted trial ends bitwise where an uninterrupted one does).

One simulated cluster for the module (``ray.cluster_utils.Cluster``: a head with no CPUs
beside the driver, two nodes of 2 CPUs; on one machine each node's CPUs are a count,
not cores), driven in this process by :func:`mario_dqn.campaign.run`. The CLI tests
(bad input, a group SIGINT) start `main.py` on its own local Ray.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from mario_dqn import campaign as K
from mario_dqn.campaign_table import FILES
from mario_dqn.checkpoint import latest_checkpoint, read_state
from tests.processes import ROOT, start, wait_for

TINY = ["learning_starts=100", "capacity=1000", "eval_every=0", "max_episode_steps=100", "target_update_period=10",
        "batch_size=8", "policy_average_steps=0", "checkpoint_every=100", "keep_checkpoints=2"]
"""tests/test_runner.py's tiny run (benchmarks/fault_injection.TINY), checkpointing every 100 steps."""
STEPS = 200
NODE_CPUS = 2


def plan(stages: str, seeds: str, grid: tuple[str, ...] = (), solve_episodes: int = 0) -> K.Plan:
    made, _ = K.make_plan(stages, seeds, grid, steps=STEPS, envs=1, sets=TINY, solve_episodes=solve_episodes)
    return made


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    small = {"object_store_memory": 80 * 1024**2, "include_dashboard": False}
    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, **small})
    for _ in range(2):
        made.add_node(num_cpus=NODE_CPUS, **small)
    yield made
    made.shutdown()


@pytest.fixture(scope="module")
def two_by_two(cluster, tmp_path_factory) -> tuple[Path, list[dict]]:
    """A campaign of 2 stages x 2 seeds, one grid value, run to the end on the cluster."""
    campaign_dir = tmp_path_factory.mktemp("campaigns") / "c2x2"
    lines: list[str] = []
    rows = K.run(plan("1-1,1-2", "0,1", ("agent.gamma=0.9",)), campaign_dir, address=cluster.address,
                 log=lines.append, progress_every=5)
    return campaign_dir, rows


def weights(path: Path) -> dict[str, np.ndarray]:
    """Every array in a Keras .weights.h5 file, by its path inside it."""
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: found.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return found


def metrics(run: Path) -> list[dict[str, str]]:
    """metrics.csv without its wall-clock columns."""
    with open(run / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k not in ("wall_s", "steps_per_s")} for row in csv.DictReader(handle)]


def assert_same_run(a: Path, b: Path) -> None:
    """Both runs ended with the same final model, bit for bit, and logged the same numbers."""
    final = f"models/step-{STEPS:012d}.weights.h5"
    wa, wb = weights(a / final), weights(b / final)
    assert wa.keys() == wb.keys() and wa
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)
    sa, sb = (read_state(latest_checkpoint(run / "checkpoints") / "state.json") for run in (a, b))
    assert sa["step"] == sb["step"] == STEPS
    assert metrics(a) == metrics(b)


def attempts(campaign_dir: Path, name: str) -> list[dict]:
    path = campaign_dir / K.LOG_DIR / f"{name}.attempts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_a_campaign_runs_every_trial_as_a_train_run_on_both_nodes(two_by_two, cluster):
    campaign_dir, rows = two_by_two
    names = ["1-1-s0-gamma0.9", "1-1-s1-gamma0.9", "1-2-s0-gamma0.9", "1-2-s1-gamma0.9"]
    assert [row["trial"] for row in rows] == names
    assert [(row["stage"], row["seed"]) for row in rows] == [("1-1", 0), ("1-1", 1), ("1-2", 0), ("1-2", 1)]
    assert all(row["overrides"] == "agent.gamma=0.9" and row["steps"] == STEPS and row["status"] == "done"
               for row in rows)
    for name in FILES:
        assert (campaign_dir / name).is_file(), name
    assert json.loads((campaign_dir / "results.json").read_text()) == rows
    with open(campaign_dir / "results.csv", newline="") as handle:
        assert [row["trial"] for row in csv.DictReader(handle)] == names
    saved = json.loads((campaign_dir / K.PLAN_FILE).read_text())
    assert [trial["name"] for trial in saved["trials"]] == names
    for name, stage, seed in zip(names, ("1-1", "1-1", "1-2", "1-2"), (0, 1, 0, 1)):
        config = json.loads((campaign_dir / name / "config.json").read_text())  # an ordinary run's
        assert config["env"]["stages"] == [stage] and config["runner"]["seed"] == seed
        assert config["agent"]["gamma"] == 0.9 and config["runner"]["total_steps"] == STEPS
    # two nodes of 2 CPUs, a trial asks for 2: trials ran on both nodes
    workers = {node.node_id for node in cluster.worker_nodes}
    ran_on = {attempt["node"] for name in names for attempt in attempts(campaign_dir, name)}
    assert ran_on == workers
    assert {row["nodes"] for row in rows} == {node[:8] for node in workers}


def _kill_when(campaign_dir: Path, name: str, act, done: threading.Event) -> threading.Thread:
    """In a thread: once the trial has its first checkpoint, call ``act(its attempt)``."""

    def watch() -> None:
        deadline = time.time() + 600
        while time.time() < deadline:
            seen = attempts(campaign_dir, name)
            if seen and latest_checkpoint(campaign_dir / name / "checkpoints") is not None:
                act(seen[-1])
                done.set()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_trial_whose_worker_is_killed_ends_bitwise_as_one_never_killed(two_by_two, cluster, tmp_path):
    reference = two_by_two[0] / "1-1-s0-gamma0.9"
    campaign_dir, killed = tmp_path / "killed", threading.Event()
    thread = _kill_when(campaign_dir, "1-1-s0-gamma0.9", lambda seen: os.kill(seen["worker"], signal.SIGKILL),
                        killed)
    rows = K.run(plan("1-1", "0", ("agent.gamma=0.9",), solve_episodes=1), campaign_dir, address=cluster.address,
                 log=lambda line: None)
    thread.join(timeout=5)
    assert killed.is_set()
    runs = [a for a in attempts(campaign_dir, "1-1-s0-gamma0.9") if a["args"][1] == "train"]
    assert len(runs) == 2 and runs[0]["worker"] != runs[1]["worker"], runs
    assert runs[1]["args"][1:3] == ["train", "--resume"]
    assert_same_run(reference, campaign_dir / "1-1-s0-gamma0.9")
    # the child trainer died with its worker: nothing else wrote the run after the kill
    stat = Path(f"/proc/{runs[0]['child']}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    # after training, the task measured its kept models for the table (1 episode each)
    row, = rows
    assert row["status"] == "done" and row["best_model"].startswith("1-1-s0-gamma0.9/models/")
    assert row["best_flag_rate"] is not None


@pytest.mark.slow
def test_a_trial_whose_node_is_removed_ends_elsewhere_bitwise(two_by_two, cluster, tmp_path):
    reference = two_by_two[0] / "1-2-s1-gamma0.9"
    campaign_dir, removed = tmp_path / "lost", threading.Event()

    def remove(seen: dict) -> None:
        node, = [n for n in cluster.worker_nodes if n.node_id == seen["node"]]
        cluster.remove_node(node, allow_graceful=False)

    thread = _kill_when(campaign_dir, "1-2-s1-gamma0.9", remove, removed)
    K.run(plan("1-2", "1", ("agent.gamma=0.9",)), campaign_dir, address=cluster.address, log=lambda line: None)
    thread.join(timeout=5)
    assert removed.is_set()
    nodes = [a["node"] for a in attempts(campaign_dir, "1-2-s1-gamma0.9")]
    assert len(nodes) == 2 and nodes[0] != nodes[1]
    assert_same_run(reference, campaign_dir / "1-2-s1-gamma0.9")
    cluster.add_node(num_cpus=NODE_CPUS, object_store_memory=80 * 1024**2)  # for any test after this


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "campaign", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.mark.parametrize("args, says", [
    (("--stages", "1-1,9-1"), "world must be 1-8"),
    (("--stages", "1-1", "--grid", "agent.no_such_key=1,2"), "unknown config key"),
    (("--stages", "1-1", "--grid", "agent.n_step=3,x"), "bad value 'x' for agent.n_step"),
    (("--stages", "1-1", "--grid", "agent.gamma=0.9,2.5"), "agent.gamma must be"),
    (("--stages", "1-1", "--grid", "runner.seed=1,2"), "set by --stages, --seeds"),
    (("--stages", "1-1", "--address", "127.0.0.1:9"), "no Ray cluster answers at 127.0.0.1:9"),
])
def test_bad_input_is_one_error_line_before_any_trial(tmp_path, args, says):
    done = cli("--save-dir", str(tmp_path), "--name", "c", *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and says in done.stderr, done.stderr
    assert not (tmp_path / "c").exists()


def test_train_play_and_evaluate_never_import_ray():
    code = "import sys, main; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_cpu_only_trial_sees_no_gpu_and_sizes_tensorflow_to_its_cpus():
    env = K.child_env(3, 0)
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["TF_NUM_INTRAOP_THREADS"] == env["TF_NUM_INTEROP_THREADS"] == env["OMP_NUM_THREADS"] == "3"
    assert K.child_env(2, 1).get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")
    assert K.child_env(2, 0.5)["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"  # a fraction of a GPU: not all of its memory


def test_the_plan_round_trips_and_names_every_combination(tmp_path):
    made = plan("2-1", "0,1", ("agent.n_step=3,10", "gamma=0.9,0.99"))
    assert [t.name for t in made.trials][:4] == ["2-1-s0-n_step3-gamma0.9", "2-1-s0-n_step3-gamma0.99",
                                                 "2-1-s0-n_step10-gamma0.9", "2-1-s0-n_step10-gamma0.99"]
    assert len(made.trials) == 8 and made.trials[-1].overrides == ("agent.n_step=10", "agent.gamma=0.99")
    assert K.Plan.from_json(made.to_json(tmp_path)) == made
    args = made.train_args(made.trials[0], tmp_path)
    assert args[:5] == ["train", "--name", "2-1-s0-n_step3-gamma0.9", "--save-dir", str(tmp_path)]
    assert args[-4:] == ["--set", "agent.n_step=3", "--set", "agent.gamma=0.9"]  # after the campaign's --set


def test_a_relative_campaign_dir_trains_at_its_absolute_path(tmp_path, monkeypatch):
    """The trainer's cwd is the repository and a Ray worker's is its own: a relative
    --save-dir would train where the driver never reads."""
    monkeypatch.chdir(tmp_path)
    made = plan("1-1", "0")
    args = made.train_args(made.trials[0], Path("save/runs/c"))
    assert args[args.index("--save-dir") + 1] == str(tmp_path / "save/runs/c")
    saved = json.loads(made.to_json(Path("c")))
    assert saved["trials"][0]["args"][4] == str(tmp_path / "c")


@pytest.mark.slow
def test_a_group_sigint_stops_the_campaign_and_resume_finishes_only_the_rest(tmp_path):
    """The CLI on its own local Ray (one trial at a time on 2 cores), stopped while its
    second trial trains: every trial stops with its checkpoint, one line, exit 130;
    --resume continues that trial from its checkpoint and runs no finished one again.
    (Longer trials than the others here: the stop must reach the second before it ends.)"""
    campaign_dir, steps = tmp_path / "stopped", 400
    sets = [arg for item in TINY for arg in ("--set", item)]
    proc = start("campaign", "--stages", "1-1", "--seeds", "0,1", "--steps", str(steps), "--envs", "1",
                 "--cpus-per-trial", "2", "--solve-episodes", "0", "--save-dir", str(tmp_path), "--name", "stopped",
                 *sets)
    first, second = campaign_dir / "1-1-s0", campaign_dir / "1-1-s1"
    try:
        wait_for(lambda: (K.trained_step(first) or 0) >= steps and K.trained_step(second) is not None
                 or proc.poll() is not None, "the second trial's first checkpoint", timeout=600)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and err.startswith("stopped by SIGINT: 1 of 2 trials finished"), err
    stopped_at = K.trained_step(second)
    assert stopped_at is not None and 100 <= stopped_at < steps
    again = cli("--resume", str(campaign_dir))
    assert again.returncode == 0, again.stderr
    assert "2 trials, 1 to run" in again.stdout
    assert len(attempts(campaign_dir, first.name)) == 1, "a finished trial is not run again"
    later = attempts(campaign_dir, second.name)[-1]["args"]
    assert later[1:3] == ["train", "--resume"]
    assert K.trained_step(second) == steps
    rows = json.loads((campaign_dir / "results.json").read_text())
    assert [(row["trial"], row["status"], row["steps"]) for row in rows] == [("1-1-s0", "done", steps),
                                                                             ("1-1-s1", "done", steps)]


def test_the_table_reads_marks_and_the_best_model_from_the_harness_cache(tmp_path):
    """A trial's row from the files a run leaves, without training: config.json, a
    checkpoint's state.json, kept models and the time-to-solve cache, metrics.csv."""
    import config as C
    from mario_dqn.campaign_table import trial_row

    made = plan("1-1", "0")
    trial = made.trials[0]
    run = tmp_path / trial.name
    (run / "models").mkdir(parents=True)
    (run / "config.json").write_text(C.to_json(C.apply_overrides(C.Config(), ["env.stages=1-1"])))
    cache = {}
    for step, wall, rate in ((100, 360.0, 0.25), (200, 720.0, 0.6), (300, 1080.0, 0.85), (400, 1440.0, 0.85)):
        (run / "models" / f"step-{step:012d}.json").write_text(json.dumps({"step": step, "wall_s": wall}))
        (run / "models" / f"step-{step:012d}.weights.h5").write_bytes(b"")
        cache[str(step)] = {"flag_rate": rate, "mean_x_pos": 1000.0 + step}
    (run / "time_to_solve.json").write_text(json.dumps({"seed=0,episodes=2,epsilon=0.0": cache}))
    (run / "metrics.csv").write_text("kind,step,episode,flag,x_pos,wall_s\nepisode,150,1,1,3161,540.0\n")
    row = trial_row(tmp_path, trial, 2, None)
    assert (row["first_flag_step"], row["first_flag_h"]) == (150, 0.15)
    assert (row["steps_50"], row["hours_50"], row["steps_80"], row["hours_80"]) == (200, 0.2, 300, 0.3)
    assert row["best_flag_rate"] == 0.85 and row["best_model"] == f"{trial.name}/models/step-{400:012d}.weights.h5"
    assert row["status"] == "not started" and row["steps"] == 0  # no checkpoint written
    assert K.progress_line(tmp_path, trial) == f"trial {trial.name}: step 150/{STEPS}, flags 1, best x 3161"


def test_a_retry_resumes_a_run_whose_newest_checkpoint_is_unreadable_never_forces_it(tmp_path):
    """--force would delete the run's older checkpoints and kept models: any complete
    checkpoint means resume (which reports a bad one itself)."""
    from mario_dqn.checkpoint import MARKER, STATE_FORMAT_VERSION, step_name

    def state(step: int) -> str:
        return json.dumps({"format_version": STATE_FORMAT_VERSION, "step": step, "agent": {}})

    made = plan("1-1", "0")
    trial = made.trials[0]
    assert K.next_train_args(tmp_path, trial, made)[:3] == ["train", "--name", trial.name]  # no run yet
    checkpoints = tmp_path / trial.name / "checkpoints"
    checkpoints.mkdir(parents=True)
    assert "--force" in K.next_train_args(tmp_path, trial, made)  # a run dir without a checkpoint
    for step, text in ((100, state(100)), (150, "{not json")):
        (checkpoints / step_name(step)).mkdir()
        (checkpoints / step_name(step) / "state.json").write_text(text)
        (checkpoints / step_name(step) / MARKER).write_text("")
    assert K.trained_step(tmp_path / trial.name) is None  # the newest is unreadable
    args = K.next_train_args(tmp_path, trial, made)
    assert args[:3] == ["train", "--resume", str(tmp_path / trial.name)] and "--force" not in args
    (checkpoints / step_name(150) / "state.json").write_text(state(STEPS))
    assert K.next_train_args(tmp_path, trial, made) is None  # trained to its steps


def test_a_trial_that_ended_solved_is_trained_short_of_its_steps(tmp_path):
    """runner.stop_when_solved: a trial whose newest checkpoint met it is not run again and
    its row says solved; the same checkpoint without the setting is a stopped trial."""
    import config as C
    from mario_dqn.campaign_table import trial_row
    from mario_dqn.checkpoint import MARKER, STATE_FORMAT_VERSION, step_name

    made = plan("1-1", "0")
    trial = made.trials[0]
    run = tmp_path / trial.name
    newest = run / "checkpoints" / step_name(STEPS // 2)
    newest.mkdir(parents=True)
    newest.joinpath("state.json").write_text(json.dumps({"format_version": STATE_FORMAT_VERSION, "step": STEPS // 2,
                                                          "agent": {}, "solved_streak": 3,
                                                          "solved_confirmed": True}))
    newest.joinpath(MARKER).write_text("")
    for setting, solved in ((3, True), (4, False), (0, False)):
        config = C.apply_overrides(C.Config(), ["env.stages=1-1", f"runner.stop_when_solved={setting}"])
        (run / "config.json").write_text(C.to_json(config))
        args = K.next_train_args(tmp_path, trial, made)
        assert (args is None) is solved and (solved or args[:2] == ["train", "--resume"])
        assert trial_row(tmp_path, trial, 0, None)["status"] == ("solved" if solved else "stopped")


@pytest.mark.slow
def test_a_campaign_whose_trial_ended_solved_exits_0(tmp_path):
    """The CLI on its own local Ray: a trial that runner.stop_when_solved ends short of its
    steps (at 0% flags here, so a tiny run gets there) is finished, not failed: exit 0 and
    its row says solved (that --resume does not run it again: the test above)."""
    sets = [arg for item in (*TINY, "eval_every=40", "eval_episodes=1", "max_episode_steps=15",
                             "stop_when_solved=2", "solved_flag_rate=0") for arg in ("--set", item)]
    done = cli("--stages", "1-1", "--seeds", "0", "--steps", "1000", "--envs", "1", "--cpus-per-trial", "2",
               "--solve-episodes", "0", "--save-dir", str(tmp_path), "--name", "solved", *sets)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "not done" not in done.stdout, done.stdout
    campaign_dir = tmp_path / "solved"
    rows = json.loads((campaign_dir / "results.json").read_text())
    assert [(row["trial"], row["status"], row["steps"]) for row in rows] == [("1-1-s0", "solved", 80)]


def test_a_second_driver_of_a_running_campaign_is_one_error_line(tmp_path):
    """Two drivers would start the same trials, and two trainers would write one run."""
    import fcntl

    (tmp_path / K.PLAN_FILE).write_text(plan("1-1", "0").to_json(tmp_path))
    with open(tmp_path / K.LOCK_FILE, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the first driver's
        done = cli("--resume", str(tmp_path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr == f"error: campaign {tmp_path} is running in another process\n"
    with K.campaign_lock(tmp_path):  # let go of: the next driver takes it
        pass


def test_a_campaign_dir_that_cannot_be_made_and_a_ray_that_fails_are_campaign_errors(tmp_path, monkeypatch):
    import ray

    (tmp_path / "file").write_text("")
    with pytest.raises(K.CampaignError, match="cannot create the campaign directory"):
        K.create_campaign_dir(tmp_path / "file" / "c")
    (tmp_path / "c").mkdir()
    with pytest.raises(K.CampaignError, match="already exists; use --resume"):
        K.create_campaign_dir(tmp_path / "c")

    def times_out(**options) -> None:
        raise TimeoutError("timed out waiting for the GCS")

    monkeypatch.setattr(ray, "init", times_out)
    with pytest.raises(K.CampaignError, match="cannot join the Ray cluster at auto: timed out waiting for the GCS"):
        K.connect("auto")


def test_resume_replaces_the_saved_solve_episodes_and_the_defaults_are_the_plans(tmp_path):
    import dataclasses

    defaults = {field.name: field.default for field in dataclasses.fields(K.Plan)}
    made, _ = K.make_plan("1-1", "0", steps=STEPS)
    assert (made.max_retries, made.solve_episodes) == (defaults["max_retries"], defaults["solve_episodes"])
    (tmp_path / K.PLAN_FILE).write_text(made.to_json(tmp_path))
    assert K.load_plan(tmp_path).solve_episodes == defaults["solve_episodes"]
    assert K.load_plan(tmp_path, solve_episodes=0).solve_episodes == 0  # once silently ignored
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "campaign", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert f"Default: {defaults['solve_episodes']}; with --resume it replaces" in " ".join(done.stdout.split())


def test_the_child_bootstrap_gives_back_the_stop_signals_and_exits_when_its_parent_is_gone(tmp_path):
    """A Ray worker runs with SIGINT ignored and blocked; the trainer must get it back."""
    script = tmp_path / "show.py"
    script.write_text("import signal, sys\n"
                      "print(sys.argv[1:], signal.getsignal(signal.SIGINT) is signal.default_int_handler,\n"
                      "      signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, signal.pthread_sigmask(signal.SIG_BLOCK, []))\n"
                      "sys.exit(3)\n")
    worker = ("import os, signal, subprocess, sys\n"
              "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])\n"
              "parent = os.getpid() if sys.argv[1] == 'me' else 1\n"
              "sys.exit(subprocess.run([sys.executable, '-m', 'mario_dqn.campaign_child', str(parent), sys.argv[2],"
              " 'a', 'b']).returncode)\n")
    done = subprocess.run([sys.executable, "-c", worker, "me", str(script)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout) == (3, "['a', 'b'] True True set()\n"), done.stderr
    orphan = subprocess.run([sys.executable, "-c", worker, "other", str(script)], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert (orphan.returncode, orphan.stdout) == (1, ""), orphan.stderr


def test_resume_of_a_directory_that_is_no_campaign_is_one_error_line(tmp_path):
    done = cli("--resume", str(tmp_path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: {tmp_path} is not a campaign"), done.stderr
