"""Campaigns: many ordinary ``train`` runs (stages x seeds x a grid of ``--set`` values) on Ray.

Each trial is a Ray task that runs exactly ``python main.py train ...`` as a child
process, so a trial *is* a train run: the same Trainer, run directory, config.json,
checkpoints, metrics.csv and kept models, and ``play``, ``evaluate``, ``--resume`` and the
time-to-solve harness work on it unchanged. A child process also gives every trial a
TensorFlow of its own, with its thread pools set to the trial's CPUs (TensorFlow reads
``TF_NUM_INTRAOP_THREADS``/``TF_NUM_INTEROP_THREADS`` at start; Ray sets only OMP's), and
keeps a CPU-only trial off any GPU (``CUDA_VISIBLE_DEVICES=""``: recent Ray no longer
hides GPUs from tasks that did not ask for one).

Nothing is lost when a worker or a node dies: the child dies with its worker (Linux
``PR_SET_PDEATHSIG``, set by mario_dqn.campaign_child after exec), so no orphan trainer keeps writing the run; Ray runs the task
again (``max_retries``), and the new attempt continues with ``train --resume`` from the
newest complete checkpoint. Resume is bitwise exact, so the trial ends where it would
have without the failure. A trainer killed on its own (the OOM killer) is resumed the
same way by its task.

Ray is imported here only: ``train``, ``play`` and ``evaluate`` never load it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from mario_dqn import checkpoint as ckpt
from mario_dqn import run_dir as RD
from mario_dqn.campaign_plan import LOG_DIR, PLAN_FILE, CampaignError, Plan, Trial
from mario_dqn.campaign_plan import load_plan as load_plan, make_plan as make_plan  # the campaign API, in one place

OBJECT_STORE_BYTES = 100 * 1024**2
"""A small object store: trials pass only small dicts through Ray, and a small /dev/shm
(containers, CI) would otherwise push Ray's default (30% of memory) to /tmp."""
POLL_S = 0.25
"""How often a trial's task looks at its trainer and at the stop flag."""
MAIN_PY = Path(__file__).resolve().parents[1] / "main.py"
STOP_FILE = "STOP"
"""Written in the campaign directory when the driver is stopped; each trial's task looks
for it every POLL_S and stops its trainer with SIGINT (the trainer writes its checkpoint).
A file, not a Ray actor: the trials already share this directory, an actor costs a worker
process, and asking one that was still starting blocked a task long enough to miss the stop."""


class CampaignStopped(Exception):
    """The driver was stopped by a signal; the trials stopped with their checkpoints."""

    def __init__(self, signal_name: str, message: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name


LOCK_FILE = "campaign.lock"
"""``<campaign>/campaign.lock``: flock'ed by the campaign's driver while it runs, so a second
driver (``--resume`` while the first still runs) cannot start the same trials, whose two
trainers would write one run directory."""


@contextlib.contextmanager
def campaign_lock(campaign_dir: Path) -> Iterator[None]:
    """Hold the campaign's lock (see LOCK_FILE); CampaignError if another process holds it.
    The kernel lets go of it when the driver dies, however it dies."""
    import fcntl

    try:
        handle = open(campaign_dir / LOCK_FILE, "a")
    except OSError as err:
        raise CampaignError(f"cannot lock campaign {campaign_dir} ({err.strerror or err})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CampaignError(f"campaign {campaign_dir} is running in another process") from None
        yield


def create_campaign_dir(campaign_dir: Path) -> None:
    """Create a new campaign's directory: one that appeared since it was checked (another
    driver of that name), or cannot be made, is refused as the check would have."""
    try:
        campaign_dir.mkdir(parents=True)
    except FileExistsError:
        raise CampaignError(f"{campaign_dir} already exists; use --resume {campaign_dir} to finish it") from None
    except OSError as err:
        raise CampaignError(f"cannot create the campaign directory {campaign_dir} "
                            f"({err.strerror or err})") from None


def new_campaign_dir(save_dir: Path, name: str | None) -> Path:
    """Where a new campaign goes (refused if it exists); not created yet."""
    name = name or f"campaign-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if not RD.is_plain_name(name):
        raise CampaignError(f"bad campaign name {name!r}: use a plain directory name")
    campaign_dir = save_dir / name
    if campaign_dir.exists():
        raise CampaignError(f"{campaign_dir} already exists; use --resume {campaign_dir} to finish it")
    return campaign_dir


# ----------------------------------------------------------------------------- a trial's task

def trained_step(run_dir: Path) -> int | None:
    """The step of the run's newest complete checkpoint, or None."""
    path = ckpt.latest_checkpoint(RD.checkpoints_dir(run_dir))
    if path is None:
        return None
    try:
        return int(ckpt.read_state(path / "state.json")["step"])
    except (ckpt.CheckpointError, KeyError, ValueError):
        return None


def trained(run_dir: Path, steps: int) -> bool:
    """Trained to ``steps``, or ended solved before them."""
    step = trained_step(run_dir)
    return step is not None and (step >= steps or RD.ended_solved(run_dir))


def next_train_args(campaign_dir: Path, trial: Trial, plan: Plan) -> list[str] | None:
    """The ``main.py`` arguments that take the trial on: None when it is trained to its
    steps; ``train --resume`` when it has any complete checkpoint (an unreadable newest one
    included: resume reports it, and ``--force`` would delete the older checkpoints and kept
    models); a fresh ``train`` only when it never wrote one."""
    run_dir = campaign_dir / trial.name
    if ckpt.latest_checkpoint(RD.checkpoints_dir(run_dir)) is None:  # never started, or stopped before its first
        return plan.train_args(trial, campaign_dir) + (["--force"] if run_dir.exists() else [])
    if trained(run_dir, trial.steps):
        return None
    return ["train", "--resume", str(run_dir), "--steps", str(trial.steps), "--no-progress"]


def needs_measuring(run_dir: Path, plan: Plan) -> bool:
    """Whether kept models of a trained trial wait for their time-to-solve evaluation."""
    if plan.solve_episodes <= 0:
        return False
    from mario_dqn.time_to_solve import measured_rows

    config = ckpt.read_run_config(run_dir)
    models = ckpt.kept_models(run_dir)
    return any(len(measured_rows(run_dir, stage, plan.solve_episodes)) < len(models) for stage in config.env.stages)


def trial_finished(campaign_dir: Path, trial: Trial, plan: Plan) -> bool:
    """Trained to its steps (its newest checkpoint is at ``--steps``, or it ended solved) and measured."""
    run_dir = campaign_dir / trial.name
    return trained(run_dir, trial.steps) and not needs_measuring(run_dir, plan)


def child_env(cpus: float, gpus: float) -> dict[str, str]:
    """The trainer's environment: TensorFlow's thread pools sized to the trial's CPUs, and
    no GPU unless the trial asked for one (Ray sets CUDA_VISIBLE_DEVICES for those). A
    trial with a GPU lets TensorFlow's memory grow as it needs: by default TensorFlow takes
    the whole GPU, and trials asking for a fraction of one share it."""
    env = dict(os.environ)
    threads = str(max(1, int(cpus)))
    env.update(TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads, OMP_NUM_THREADS=threads)
    if gpus <= 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
    else:
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _ask_stop(campaign_dir: Path) -> str | None:
    """The signal that stopped the driver, if it asked the trials to stop (see STOP_FILE)."""
    try:
        return (campaign_dir / STOP_FILE).read_text().strip() or None
    except OSError:
        return None


def _run_child(command: list[str], env: dict[str, str], log: Any, campaign_dir: Path, attempts: Path,
               record: dict[str, Any]) -> tuple[int, str | None]:
    """Run ``python COMMAND`` (``SCRIPT ARGS`` or ``-m MODULE ARGS``) to its end through
    mario_dqn.campaign_child, which ties it to this worker and gives it back the stop
    signals; forward a stop request to it as SIGINT. (exit code, stop)."""
    argv = [sys.executable, "-m", "mario_dqn.campaign_child", str(os.getpid()), *command]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            cwd=MAIN_PY.parent, start_new_session=True)
    with open(attempts, "a") as handle:
        handle.write(json.dumps({**record, "child": proc.pid, "args": command, "started": time.time()}) + "\n")
    stopped = None
    while True:
        try:
            code = proc.wait(timeout=POLL_S)
            return code, stopped
        except subprocess.TimeoutExpired:
            pass
        if stopped is None:
            stopped = _ask_stop(campaign_dir)
            if stopped is not None:
                proc.send_signal(signal.SIGINT)  # the trainer finishes its step and writes its checkpoint


def run_trial(campaign_dir: str, trial: dict[str, Any], plan_json: str, cpus: float, gpus: float) -> dict[str, Any]:
    """A trial's Ray task: train (or resume) the run to its steps, then measure its kept
    models. Run again by Ray when its worker or node dies; it picks up from the files."""
    import ray

    root, plan = Path(campaign_dir), Plan.from_json(plan_json)
    t = Trial(**{**trial, "overrides": tuple(trial["overrides"])})
    run_dir = root / t.name
    (root / LOG_DIR).mkdir(exist_ok=True)
    attempts = root / LOG_DIR / f"{t.name}.attempts.jsonl"
    record = {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "worker": os.getpid()}
    env = child_env(cpus, gpus)
    result = {"name": t.name, "code": 0, "stopped_by": None, **record}
    with open(root / LOG_DIR / f"{t.name}.log", "a") as log:
        for _ in range(plan.max_retries + 1):  # a trainer killed from outside is resumed this many times
            result["stopped_by"] = _ask_stop(root)
            if result["stopped_by"] is not None:  # queued when the driver was stopped: do not start
                return result
            args = next_train_args(root, t, plan)
            if args is None:
                break
            code, stopped = _run_child([str(MAIN_PY), *args], env, log, root, attempts, record)
            result.update(code=code, stopped_by=stopped)
            if stopped is not None or code >= 0:
                break
        if result["code"] == 0 and result["stopped_by"] is None and trained_step(run_dir) is not None \
                and needs_measuring(run_dir, plan):
            command = ["-m", "mario_dqn.time_to_solve", str(run_dir), "--episodes",
                    str(plan.solve_episodes), "--jobs", str(max(1, int(cpus))), "--quiet"]
            code, stopped = _run_child(command, env, log, root, attempts, record)
            result.update(code=code, stopped_by=stopped, measured=code == 0)
    return result


# ----------------------------------------------------------------------------- the driver

def _check_answers(address: str, timeout: float = 5.0) -> None:
    """Refuse a HOST:PORT where nothing listens, at once (ray.init would retry for a minute)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise CampaignError(f"--address {address!r}: expected 'auto' or HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise CampaignError(f"no Ray cluster answers at {address} ({err.strerror or err})") from None


def connect(address: str | None) -> None:
    """Start a local Ray (as many CPUs as this machine) or join the cluster at ``address``."""
    import ray

    if address not in (None, "auto"):
        _check_answers(address)
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR,
                               "configure_logging": True}
    if address is None:  # "local": a new Ray even where RAY_ADDRESS names a running one
        options.update(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                       object_store_memory=OBJECT_STORE_BYTES)
    else:
        options["address"] = address
    try:
        with _quiet_stderr():
            ray.init(**options)
    except Exception as err:  # ConnectionError, TimeoutError, RuntimeError, ValueError, Ray's own: one line
        raise CampaignError(f"cannot {'start Ray' if address is None else f'join the Ray cluster at {address}'}: "
                            f"{' '.join(str(err).split())[:300]}") from None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Ray's start-up prints a few lines on fd 2 (from its C++ side too); a campaign's
    output is its own lines. Errors still surface as exceptions."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def trial_resources(plan: Plan) -> tuple[float, float]:
    """(CPUs, GPUs) per trial, checked against the nodes: a trial no node can hold is
    refused rather than left waiting forever."""
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    most_cpus = max((res.get("CPU", 0.0) for res in nodes), default=0.0)
    most_gpus = max((res.get("GPU", 0.0) for res in nodes), default=0.0)
    cpus = plan.cpus_per_trial
    if cpus is None:
        cpus = min(max(t.envs for t in plan.trials) + 1, max(most_cpus, 1.0))
    elif cpus > most_cpus:
        raise CampaignError(f"--cpus-per-trial {cpus:g}: no node has that many CPUs (the most: {most_cpus:g})")
    if plan.gpus_per_trial > most_gpus:
        raise CampaignError(f"--gpus-per-trial {plan.gpus_per_trial:g}: no node has that many GPUs "
                            f"(the most: {most_gpus:g})")
    return cpus, plan.gpus_per_trial


def progress_line(campaign_dir: Path, trial: Trial) -> str | None:
    """``trial NAME: step X/N, flags F, best x B`` from the trial's metrics.csv, or None
    before it has one."""
    import csv

    path = RD.metrics_path(campaign_dir / trial.name)
    if not path.exists():
        return None
    step, flags, best = 0, 0, 0
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            step = max(step, int(row["step"] or 0))
            if row["kind"] == "episode":
                flags += row["flag"] == "1"
                best = max(best, int(float(row["x_pos"] or 0)))
    return f"trial {trial.name}: step {step:,}/{trial.steps:,}, flags {flags}, best x {best}"


def run(plan: Plan, campaign_dir: Path, *, address: str | None = None, resume: bool = False,
        log: Callable[[str], None] = print, progress_every: float = 60.0) -> list[dict[str, Any]]:
    """Run the trials of ``plan`` not finished yet in ``campaign_dir``; return the results
    table (also written there). Raises CampaignError before any trial starts, and
    CampaignStopped when a stop signal ended it (the trials stopped with checkpoints); an
    OSError is a failed write of the campaign's own files (its trials' runs stay whole)."""
    import ray

    from mario_dqn.campaign_table import write_table
    from mario_dqn.signals import StopRequest

    campaign_dir = Path(os.path.abspath(campaign_dir))  # the trials' tasks and trainers have other cwds
    with contextlib.ExitStack() as held:  # the campaign's lock, until its table is written
        if resume:  # before Ray starts: a second driver is refused at once
            held.enter_context(campaign_lock(campaign_dir))
        try:
            connect(address)
        except KeyboardInterrupt:
            raise CampaignStopped("SIGINT", "stopped by SIGINT before any trial started") from None
        try:
            cpus, gpus = trial_resources(plan)
            # ray.init installed its own SIGTERM handler: ours is installed after it, so it wins.
            with StopRequest(finishing="stopping the trials with their checkpoints") as stop:
                if not resume:
                    create_campaign_dir(campaign_dir)
                    held.enter_context(campaign_lock(campaign_dir))
                    (campaign_dir / PLAN_FILE).write_text(plan.to_json(campaign_dir))
                results = _run_trials(plan, campaign_dir, cpus, gpus, stop, log, progress_every)
        finally:
            with _quiet_stderr():
                ray.shutdown()
        table = write_table(campaign_dir, plan, results)
    if stop.name is not None:
        done = sum(trial_finished(campaign_dir, t, plan) for t in plan.trials)
        raise CampaignStopped(stop.name, f"stopped by {stop.name}: {done} of {len(plan.trials)} trials finished; "
                                         f"'python main.py campaign --resume {campaign_dir}' finishes the rest")
    return table


def _run_trials(plan: Plan, campaign_dir: Path, cpus: float, gpus: float, stop: Any,
                log: Callable[[str], None], progress_every: float) -> dict[str, dict[str, Any]]:
    """Submit the unfinished trials and wait for them, printing progress; their results by name."""
    import ray

    (campaign_dir / STOP_FILE).unlink(missing_ok=True)  # a stop of an earlier driver of this campaign
    task = ray.remote(run_trial).options(num_cpus=cpus, num_gpus=gpus, max_retries=plan.max_retries,
                                         retry_exceptions=False)
    plan_json = plan.to_json(campaign_dir)
    results: dict[str, dict[str, Any]] = {}
    pending: dict[Any, Trial] = {}
    for trial in plan.trials:
        if trial_finished(campaign_dir, trial, plan):
            results[trial.name] = {"name": trial.name, "code": 0, "stopped_by": None, "earlier": True}
        else:
            pending[task.remote(str(campaign_dir), dataclasses.asdict(trial), plan_json, cpus, gpus)] = trial
    log(f"campaign {campaign_dir}: {len(plan.trials)} trials, {len(pending)} to run, {cpus:g} CPUs"
        + (f" and {gpus:g} GPUs" if gpus else "") + " each")
    asked, last, shown = False, time.monotonic(), {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
        for ref in ready:
            trial = pending.pop(ref)
            try:
                results[trial.name] = ray.get(ref)
            except ray.exceptions.RayError as err:  # retries spent: a worker or node died each time
                results[trial.name] = {"name": trial.name, "code": None, "stopped_by": None,
                                       "error": " ".join(str(err).split())[:200]}
            if stop.name is None:
                log(_finished_line(trial, results[trial.name]))
        if stop.name is not None and not asked:
            tmp = campaign_dir / f"{STOP_FILE}.tmp"
            tmp.write_text(stop.name)
            tmp.replace(campaign_dir / STOP_FILE)
            asked = True
        if stop.name is None and time.monotonic() - last >= progress_every:
            last = time.monotonic()
            for trial in pending.values():
                line = progress_line(campaign_dir, trial)
                if line is not None and line != shown.get(trial.name):  # a trial between episodes says nothing new
                    shown[trial.name] = line
                    log(line)
    return results


def _finished_line(trial: Trial, result: dict[str, Any]) -> str:
    if result.get("error"):
        return f"trial {trial.name}: failed ({result['error']})"
    if result["code"] != 0:
        return f"trial {trial.name}: failed (exit {result['code']}; see {LOG_DIR}/{trial.name}.log)"
    return f"trial {trial.name}: done"
