"""A run directory: its layout, its creation, where a resume continues, and what a failed write leaves.

    SAVE_DIR/NAME/
      config.json     the resolved config the run was started with (what resume, play
                      and evaluate use; never today's defaults)
      checkpoints/    step-<N>/ (complete ones carry a marker), latest, best
      models/         each checkpoint's policy weights, kept when checkpoints are pruned
      metrics.csv     one row per episode and evaluation (with tensorboard/ beside it)
      videos/         what ``play --record`` writes
      started-over.json  only in a run that started over with another action set
                      (``env.loop_action_set``): what the attempt before cost

One owner for this layout: the command line, the notebook and the campaign create and
read runs through these functions. Refusals are :class:`~mario_dqn.errors.RunDirError`,
failed writes :class:`~mario_dqn.errors.RunWriteError`, each one line.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import config as C
from mario_dqn import checkpoint as ckpt
from mario_dqn.errors import MarioDQNError, RunDirError, RunWriteError, UserInputError, tensorflow_write_error
from mario_dqn.solved import STREAK, is_solved

CONFIG_FILE = "config.json"
CHECKPOINTS_DIR = "checkpoints"
MODELS_DIR = ckpt.MODELS_DIR
METRICS_FILE = "metrics.csv"
VIDEOS_DIR = "videos"
STARTED_OVER_FILE = "started-over.json"
TENSORBOARD_DIR = "tensorboard"


def config_path(run_dir: Path) -> Path:
    return Path(run_dir) / CONFIG_FILE


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR


def models_dir(run_dir: Path) -> Path:
    return Path(run_dir) / MODELS_DIR


def metrics_path(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS_FILE


def videos_dir(run_dir: Path) -> Path:
    return Path(run_dir) / VIDEOS_DIR


def run_of(path: Path) -> Path:
    """The run directory of ``path`` (a run directory, one of its checkpoints or one of
    its kept models); a checkpoint or agent directory outside a run is its own."""
    kept_in = ckpt.kept_model_run(Path(path))
    if kept_in is not None:
        return kept_in
    checkpoint = ckpt.resolve(Path(path))
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS_DIR else checkpoint


def write_config(run_dir: Path, config: C.Config) -> None:
    """Write the run's resolved config (what every later use of the run reads)."""
    config_path(run_dir).write_text(C.to_json(config))


def default_name(config: C.Config) -> str:
    """A new run's name when none is given: its first stage and the time it started."""
    return f"world-{config.env.stages[0]}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def is_plain_name(name: str) -> bool:
    """Whether ``name`` names a directory directly inside the save directory: no path
    separator and not ``.`` or ``..`` (which would put a run or campaign somewhere else,
    or let --force delete the save directory itself)."""
    return "/" not in name and name not in ("", ".", "..")


def new_run_dir(config: C.Config, name: str | None = None, force: bool = False) -> Path:
    """Create ``config.paths.save_dir/name`` with its videos/ and config.json.

    An existing directory of that name is replaced only with ``force``, and only when it
    is a mario-dqn run (it has a config.json) or empty: --force deletes a directory tree.
    """
    name = name or default_name(config)
    if not is_plain_name(name):
        raise RunDirError(f"bad run name {name!r}: use a plain directory name")
    run_dir = Path(config.paths.save_dir) / name
    if run_dir.exists() or run_dir.is_symlink():
        if not force:
            raise RunDirError(f"run {run_dir} already exists; use --resume {run_dir} or --force to replace it")
        if run_dir.is_symlink() or not run_dir.is_dir() or (
                any(run_dir.iterdir()) and not config_path(run_dir).is_file()):
            raise RunDirError(f"refusing to replace {run_dir} with --force: it is not a mario-dqn run "
                              f"(no {CONFIG_FILE})")
        try:
            shutil.rmtree(run_dir)
        except OSError as err:
            raise RunWriteError(f"cannot remove {err.filename or run_dir}: {err.strerror or err}") from None
    try:
        videos_dir(run_dir).mkdir(parents=True)
    except OSError as err:
        raise RunDirError(f"cannot create {run_dir}: {err.strerror or err}") from None
    try:
        write_config(run_dir, config)
    except OSError as err:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing in it yet but what was just made
        raise RunWriteError(f"cannot write {config_path(run_dir)}: {err.strerror or err}") from None
    return run_dir


def resume_point(run_dir: Path, steps: int | None = None) -> tuple[C.Config, ckpt.Checkpoint]:
    """(config, checkpoint) to continue ``run_dir`` from, ``steps`` (a new total) applied.

    Refused before the model loads where it can be: a run with no complete checkpoint
    (CheckpointError), one already at its total and one that ended solved
    (``runner.stop_when_solved``): resuming either would only rewrite the newest checkpoint.
    """
    config = ckpt.read_run_config(run_dir)
    if steps is not None:
        config = C.replace(config, {"runner": {"total_steps": steps}})
    path = ckpt.latest_checkpoint(checkpoints_dir(run_dir))
    if path is None:
        raise ckpt.CheckpointError(f"{run_dir} holds no complete checkpoint to resume from")
    state = ckpt.read_state(path / "state.json")
    done_step = state["step"]
    if is_solved(state, config.runner):
        raise UserInputError(f"{run_dir} ended solved at step {done_step:,} ({state[STREAK]} evaluations in a row "
                             f"at >= {config.runner.solved_flag_rate:.0%} flags, runner.stop_when_solved); "
                             f"nothing to resume")
    if config.runner.total_steps <= done_step:
        raise UserInputError(f"{run_dir} is already at step {done_step:,} of {config.runner.total_steps:,}; "
                             f"pass --steps N with N > {done_step} to train further")
    return config, ckpt.load_checkpoint(path)


def start_over(run_dir: Path, config: C.Config, action_set: str, step: int, wall_s: float) -> C.Config:
    """Make ``run_dir`` a new run of ``config`` with ``action_set``, and return that config.

    A castle maze that only a route with Left passes asked for it (``env.loop_action_set``):
    what the attempt before wrote (checkpoints, kept models, metrics.csv, TensorBoard logs)
    is removed, so the run that follows is, file for file, the run started with
    ``--set env.action_set=ACTION_SET``; the steps and seconds the attempt took are kept in
    started-over.json, since they count towards the time to solve the stage.
    """
    run_dir = Path(run_dir)
    restarted = C.replace(config, {"env": {"action_set": action_set}})
    note = {"action_set_before": config.env.action_set, "action_set": action_set, "steps_before": int(step),
            "wall_s_before": round(float(wall_s), 1),
            "why": "a castle maze looped Mario back for a wrong route (env.loop_action_set)"}
    try:
        for path in (checkpoints_dir(run_dir), models_dir(run_dir), run_dir / TENSORBOARD_DIR):
            if path.exists():
                shutil.rmtree(path)
        metrics_path(run_dir).unlink(missing_ok=True)
        (run_dir / STARTED_OVER_FILE).write_text(json.dumps(note, indent=1) + "\n")
        write_config(run_dir, restarted)
    except OSError as err:
        raise RunWriteError(f"cannot start {run_dir} over: {err.filename or run_dir}: {err.strerror or err}") from None
    return restarted


def ended_solved(run_dir: Path) -> bool:
    """Whether the run's newest complete checkpoint says it ended solved
    (``runner.stop_when_solved``): then it is trained, short of its steps."""
    path = ckpt.latest_checkpoint(checkpoints_dir(run_dir))
    if path is None:
        return False
    try:
        return is_solved(ckpt.read_state(path / "state.json"), ckpt.read_run_config(run_dir).runner)
    except (ckpt.CheckpointError, KeyError, ValueError):
        return False


def write_failure(run_dir: Path, err: BaseException) -> str | None:
    """What failed, as one line, when ``err`` is a failed write while training ``run_dir``; else None.

    OSErrors come from checkpoints (CheckpointWriteError, which names the checkpoint) and
    metrics.csv; TensorBoard's writer raises TensorFlow's own errors instead, recognised
    by naming the run (:func:`~mario_dqn.errors.tensorflow_write_error`).
    """
    if isinstance(err, ckpt.CheckpointWriteError):
        return str(err)
    if isinstance(err, OSError):
        return f"cannot write {err.filename or run_dir}: {err.strerror or err}"
    text = tensorflow_write_error(err, run_dir)
    return None if text is None else f"cannot write {text}"


def io_failure(run_dir: Path, what: str) -> RunWriteError:
    """The one line a user needs after a failed write: what failed, what is still safe,
    and how to continue once the disk has room again."""
    intact = ckpt.latest_checkpoint(checkpoints_dir(run_dir))
    if intact is None:
        return RunWriteError(f"{what}; training stopped before its first checkpoint")
    return RunWriteError(f"{what}; training stopped, {intact.name} is intact: free space and run "
                         f"'train --resume {run_dir}'")


def training_failure(err: BaseException, run_dir: Path | None, restoring: Path | None = None) -> Exception | None:
    """The error to report for what stopped training ``run_dir``, or None for a bug
    (whose traceback must be kept).

    The package's own refusals and a bad checkpoint or config pass as they are; a failed
    write becomes :func:`io_failure`'s; a state.json this version cannot restore
    (``restoring`` names it while a resume restores: a field missing or mistyped) becomes
    a refusal naming it.
    """
    if isinstance(err, (MarioDQNError, ckpt.CheckpointError, C.ConfigError)):
        return err
    what = write_failure(run_dir, err) if run_dir is not None else None
    if what is not None:
        return io_failure(run_dir, what)
    if restoring is not None and isinstance(err, (KeyError, TypeError, ValueError)):
        return UserInputError(f"{restoring} does not match this version of mario-dqn ({type(err).__name__}: {err})")
    return None

