"""mario-dqn command line: train, evaluate, play and inspect the configuration.

Every user mistake ends with one line on stderr and exit code 2, never a traceback,
and never touches an existing run. A write that fails while training (disk full, an
unwritable directory) stops the run with one line and exit code 1; the checkpoints
written before it stay whole, and --resume continues from the newest.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

import config as C

DEFAULTS = C.Config()


class UserError(click.ClickException):
    """One line, exit code 2 (click's convention for usage errors); :func:`main` prints it."""

    exit_code = 2


class RunError(UserError):
    """Training stopped on an I/O failure (disk full, unwritable directory): one line,
    exit code 1, because the command was right and the machine was not."""

    exit_code = 1


def _one_line(message: str) -> str:
    """Errors are promised to be one line; messages that quote an OS or numpy error
    could carry a newline."""
    return " ".join(message.split())


def _write_failure(run_dir: Path, err: BaseException) -> str | None:
    """What failed, as one line, when ``err`` is a failed write while training; else None.

    OSErrors come from checkpoints (CheckpointWriteError, which names the checkpoint) and
    metrics.csv; TensorBoard's writer raises TensorFlow's own errors instead (a full disk
    is a ResourceExhaustedError naming the events file), recognised by naming the run.
    """
    from mario_dqn import checkpoint as ckpt

    if isinstance(err, ckpt.CheckpointWriteError):
        return str(err)
    if isinstance(err, OSError):
        return f"cannot write {err.filename or run_dir}: {err.strerror or err}"
    tf_errors = sys.modules.get("tensorflow.python.framework.errors_impl")
    if tf_errors is not None and isinstance(err, tf_errors.OpError) and str(run_dir) in str(err.message):
        text = re.sub(r"\{\{.*?\}\}", "", str(err.message))  # drop TF's {{function_node ...}} prefix
        return f"cannot write {_one_line(text)}"
    return None


def _io_failure(run_dir: Path, what: str) -> RunError:
    """The one line a user needs after a failed write: what failed, what is still safe,
    and how to continue once the disk has room again."""
    from mario_dqn import checkpoint as ckpt

    intact = ckpt.latest_checkpoint(run_dir / "checkpoints")
    if intact is None:
        return RunError(f"{what}; training stopped before its first checkpoint")
    return RunError(f"{what}; training stopped, {intact.name} is intact: free space and run "
                    f"'train --resume {run_dir}'")


AT_LEAST_ONE = click.IntRange(min=1)

NES_FPS = 60
"""Frames per second of the NES: a recorded video at NES_FPS / frame_skip plays at game speed."""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """Train a Deep Q-Network to play Super Mario Bros from pixels.

    \b
    python main.py train                     train on World 1-1 with the defaults
    python main.py train --resume RUN_DIR    continue a stopped run exactly
    python main.py evaluate RUN_DIR --json   greedy evaluation on fixed seeds
    python main.py config                    every config key, its default and meaning
    """


def _train_error(err: Exception, run_dir: Path | None, restoring: Path | None) -> click.ClickException | None:
    """The one line (and exit code) for what stopped ``train``, or None for a bug.

    A refusal of the command (UserError), a bad checkpoint or config (exit 2), a state.json
    that this version cannot restore (``restoring`` names it while a resume restores), and a
    failed write while training (disk full, unwritable: exit 1, see :func:`_io_failure`).
    """
    from mario_dqn import checkpoint as ckpt

    if isinstance(err, click.ClickException):
        return err
    if isinstance(err, (ckpt.CheckpointError, C.ConfigError)):
        return UserError(str(err))
    what = _write_failure(run_dir, err) if run_dir is not None else None
    if what is not None:
        return _io_failure(run_dir, what)
    if restoring is not None and isinstance(err, (KeyError, TypeError, ValueError)):  # a field missing or mistyped
        return UserError(f"{restoring} does not match this version of mario-dqn ({type(err).__name__}: {err})")
    return None


def _resume_point(resume: Path, steps: int | None) -> tuple[C.Config, Any]:
    """(config, checkpoint) to continue ``resume`` from, ``--steps`` applied; refused, before
    TensorFlow loads where it can be, when there is nothing to continue."""
    from mario_dqn import checkpoint as ckpt

    config = ckpt.read_run_config(resume)
    if steps is not None:
        config = C.replace(config, {"runner": {"total_steps": steps}})
    path = ckpt.latest_checkpoint(resume / "checkpoints")
    if path is None:
        raise ckpt.CheckpointError(f"{resume} holds no complete checkpoint to resume from")
    done_step = ckpt.read_state(path / "state.json")["step"]
    if config.runner.total_steps <= done_step:
        # Resuming would only rewrite the newest checkpoint; say so (before loading the model).
        raise UserError(f"{resume} is already at step {done_step:,} of {config.runner.total_steps:,}; "
                        f"pass --steps N with N > {done_step} to train further")
    return config, ckpt.load_checkpoint(path)


def _new_run_dir(config: C.Config, name: str | None, force: bool) -> Path:
    """Create the new run's directory with its config.json (replacing a run of that name
    only with ``force``, and only if it is a mario-dqn run)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = name or f"world-{config.env.stages[0]}-{stamp}"
    if "/" in name or name in (".", ".."):
        raise UserError(f"bad run name {name!r}: use a plain directory name")
    run_dir = Path(config.paths.save_dir) / name
    if run_dir.exists() or run_dir.is_symlink():
        if not force:
            raise UserError(f"run {run_dir} already exists; use --resume {run_dir} or --force to replace it")
        # --force deletes a directory tree: only one that is a mario-dqn run (or empty).
        if run_dir.is_symlink() or not run_dir.is_dir() or (
                any(run_dir.iterdir()) and not (run_dir / "config.json").is_file()):
            raise UserError(f"refusing to replace {run_dir} with --force: it is not a mario-dqn run "
                            f"(no config.json)")
        try:
            shutil.rmtree(run_dir)
        except OSError as err:
            raise RunError(f"cannot remove {err.filename or run_dir}: {err.strerror or err}") from None
    try:
        (run_dir / "videos").mkdir(parents=True)
    except OSError as err:
        raise UserError(f"cannot create {run_dir}: {err.strerror or err}") from None
    try:
        (run_dir / "config.json").write_text(C.to_json(config))
    except OSError as err:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing in it yet but what we just made
        raise RunError(f"cannot write {run_dir / 'config.json'}: {err.strerror or err}") from None
    return run_dir


def _preset_overrides(preset: str | None) -> list[str]:
    """The ``key=value`` items of ``preset`` (none without one), or a one-line UserError."""
    if preset is None:
        return []
    from config import presets

    try:
        return presets.load(preset)[1]
    except C.ConfigError as err:
        raise UserError(str(err)) from None


def _resolve_train_config(world: int | None, stage: int | None, stages: str | None, steps: int | None,
                          envs: int | None, seed: int | None, save_dir: str | None,
                          overrides: tuple[str, ...], preset: str | None = None) -> C.Config:
    """The defaults, then the preset, then ``--set``, then the named options: later wins."""
    if stages and (world is not None or stage is not None):
        raise UserError("--stages cannot be combined with --world/--stage")
    items = _preset_overrides(preset) + list(overrides)
    if world is not None or stage is not None:
        items.append(f"env.stages={world or 1}-{stage or 1}")
    if stages:
        items.append(f"env.stages={stages}")
    for key, value in (("runner.total_steps", steps), ("runner.num_envs", envs), ("runner.seed", seed),
                       ("paths.save_dir", save_dir)):
        if value is not None:
            items.append(f"{key}={value}")
    try:
        return C.apply_overrides(DEFAULTS, items)
    except C.ConfigError as err:
        raise UserError(str(err)) from None


@cli.command()
@click.option("--world", type=int, help="World 1-8 (with --stage). Default: 1.")
@click.option("--stage", type=int, help="Stage 1-4 (with --world). Default: 1.")
@click.option("--stages", help="Several stages, e.g. '1-1,1-2'; each episode samples one.")
@click.option("--steps", type=AT_LEAST_ONE,
              help=f"Total agent steps of the run (a resumed run continues up to this). "
                   f"Default: {DEFAULTS.runner.total_steps:,}.")
@click.option("--envs", type=AT_LEAST_ONE,
              help=f"Environments stepped in parallel. Default: {DEFAULTS.runner.num_envs}.")
@click.option("--seed", type=int, help=f"Seed of every RNG. Default: {DEFAULTS.runner.seed}.")
@click.option("--name", help="Run name; the run goes to SAVE_DIR/NAME. Default: world-stage and a timestamp.")
@click.option("--save-dir", help=f"Root of runs. Default: {DEFAULTS.paths.save_dir}.")
@click.option("--resume", "resume", type=click.Path(file_okay=False, path_type=Path),
              help="Continue the run in this directory from its latest complete checkpoint.")
@click.option("--force", is_flag=True, help="Replace an existing run of the same name.")
@click.option("--preset", metavar="NAME",
              help="Start from the overrides of config/presets/NAME.json (--set and the options above "
                   "still win); 'python main.py config --presets' lists them.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any config field, e.g. --set agent.gamma=0.95 (repeatable; "
                   "see 'python main.py config').")
@click.option("--no-progress", is_flag=True, help="No progress bar (for logs and CI).")
def train(world, stage, stages, steps, envs, seed, name, save_dir, resume, force, preset, overrides, no_progress):
    """Train a DQN agent; writes config.json, checkpoints/, metrics.csv and TensorBoard logs.

    Stop it any time with Ctrl-C (or SIGTERM, or by closing the terminal): it finishes
    the step, writes a checkpoint and exits 130 (143, 129); --resume continues with
    exactly the numbers an uninterrupted run would give.
    """
    # Every check that needs no TensorFlow comes first, so a mistake is refused at once.
    if resume is not None and (any(v is not None for v in (world, stage, stages, envs, seed, name, save_dir,
                                                           preset)) or overrides or force):
        raise UserError("--resume continues a run with its saved config; only --steps may change")
    run_dir, trainer, restoring = resume, None, None
    try:
        if resume is not None:
            config, checkpoint = _resume_point(resume, steps)
            from mario_dqn.runner import Trainer

            click.echo(f"resuming {resume} from {checkpoint.path.name} (step {checkpoint.state['step']:,})")
            trainer = Trainer(config, resume, progress=not no_progress)
            restoring = checkpoint.path / "state.json"
            trainer.restore(checkpoint)
            restoring = None
        else:
            config = _resolve_train_config(world, stage, stages, steps, envs, seed, save_dir, overrides, preset)
            run_dir = _new_run_dir(config, name, force)
            from mario_dqn.runner import Trainer

            click.echo(f"run directory: {run_dir}")
            trainer = Trainer(config, run_dir, progress=not no_progress)
        result = trainer.run()
    except Exception as err:
        if trainer is not None:
            trainer.envs.close()  # the env processes started; a refusal must not leave them behind
        mapped = _train_error(err, run_dir, restoring)
        if mapped is None:  # a bug: keep its traceback
            raise
        raise mapped from None
    if result["stopped_by"]:  # the trainer has said where it stopped, in one line
        from mario_dqn.signals import exit_code

        sys.exit(exit_code(result["stopped_by"]))
    click.echo(f"done: step {result['step']:,}, {result['episodes']} episodes, {result['flags']} flags, "
               f"best x_pos {result['best_x']}; checkpoint {result['checkpoint']}")


def _load_for_play(path: Path, stage: str | None = None) -> tuple[Any, Any]:
    """(config, agent) from a run dir or checkpoint: the saved config, never today's
    defaults; ``stage`` ('W-S') replaces its stages (the wrapper stack stays the same)."""
    from mario_dqn import checkpoint as ckpt

    try:
        policy = ckpt.load_policy(path)  # a wrong path is refused before TensorFlow starts
        from mario_dqn.environment import ACTIONS
        from mario_dqn.build import build_agent

        agent = build_agent(policy.config, len(ACTIONS[policy.config.env.action_set]))
        ckpt.restore_policy(policy, agent)
    except ckpt.CheckpointError as err:
        raise UserError(str(err)) from None
    config = policy.config
    if stage is not None:
        config = C.replace(config, {"env": {"stages": (stage,)}})
    return config, agent


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--episodes", type=AT_LEAST_ONE, default=5, show_default=True, help="Episodes to play.")
@click.option("--seed", type=int, default=0, show_default=True, help="Episode i uses seed SEED+i.")
@click.option("--epsilon", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Exploration rate (0 = greedy).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--stage", "only_stage", metavar="W-S",
              help="Evaluate on this stage only (e.g. 1-3; for an agent of several stages, or to try an "
                   "agent on a stage it was not trained on). Default: the agent's own stages.")
def evaluate(path, episodes, seed, epsilon, as_json, only_stage):
    """Evaluate a run or checkpoint on fixed seeds: mean return, x_pos and flag rate
    (pooled, and per stage when there are several)."""
    from mario_dqn.signals import StopRequest

    stage = _check_stage(only_stage)
    with StopRequest(finishing="stopping") as stop:  # from the start: a Ctrl-C while loading counts too
        config, agent = _load_for_play(path, stage)
        result = _play_episodes(agent, config, episodes, seed, epsilon, None, stop, quiet=as_json)
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    for i, row in enumerate(result["per_episode"]):
        click.echo(_episode_line(i, row))
    if len(result["per_stage"]) > 1:
        for name, part in result["per_stage"].items():
            click.echo(f"stage {name}: {part['episodes']} episodes, mean return {part['mean_return']:.2f}, "
                       f"mean x_pos {part['mean_x_pos']:.0f}, flag rate {part['flag_rate']:.0%}")
    click.echo(f"mean return {result['mean_return']:.2f}, mean x_pos {result['mean_x_pos']:.0f}, "
               f"max x_pos {result['max_x_pos']}, flag rate {result['flag_rate']:.0%}")


def _check_stage(text: str | None) -> str | None:
    """A --stage value as 'W-S', or a one-line refusal."""
    if text is None:
        return None
    try:
        world, stage = C.parse_stage(text)
    except C.ConfigError as err:
        raise UserError(f"--stage: {err}") from None
    return f"{world}-{stage}"


def _episode_line(i: int, row: dict[str, Any]) -> str:
    return (f"episode {i}: stage {row['stage']} return {row['return']:.2f} x_pos {row['x_pos']} "
            f"flag {'yes' if row['flag'] else 'no'}")


def _play_sinks(recorder: Any, window: Any) -> tuple[Any, Any]:
    """(on_frame, on_step) for ``runner.evaluate``: the window gets every game frame; a
    plain recorder (EpisodeVideos) the frames too, an explaining one (ExplainVideos) each
    state with what the network saw and valued."""
    frame_sinks = [sink.on_frame for sink in (window, recorder) if hasattr(sink, "on_frame")]
    on_step = getattr(recorder, "on_step", None)
    if not frame_sinks:
        return None, on_step
    if len(frame_sinks) == 1:
        return frame_sinks[0], on_step

    def on_frame(episode: int, frame: Any) -> None:
        for sink in frame_sinks:
            sink(episode, frame)

    return on_frame, on_step


def _play_episodes(agent: Any, config: C.Config, episodes: int, seed: int, epsilon: float, recorder: Any,
                   stop: Any, quiet: bool = False, window: Any = None) -> dict[str, Any]:
    """``runner.evaluate`` for play/evaluate, stopping cleanly on SIGINT/SIGTERM/SIGHUP
    and, with ``window`` (play --window), when the user closes the window.

    A stop ends the episode in progress between two steps; the video being written is
    closed, so it is a playable mp4 of the episode up to that point, and the window
    closes. What finished is printed, then one line, and the exit code is the signal's
    (SIGINT: 130), or 0 for a closed window: ending play that way is what the user asked.
    ``stop`` is the command's active :class:`~mario_dqn.signals.StopRequest`, entered
    before the model loads, so a signal that arrives while it loads stops play before
    its first step instead of being lost in TensorFlow's start-up.
    """
    from mario_dqn.evaluation import EvaluationStopped
    from mario_dqn.evaluation import evaluate as run_eval
    from mario_dqn.signals import exit_code

    on_frame, on_step = _play_sinks(recorder, window)
    try:
        return run_eval(agent, config, episodes, seed, epsilon, on_frame,
                        stop=lambda: stop.name is not None or (window is not None and window.closed),
                        on_step=on_step)
    except EvaluationStopped as stopped:
        done = stopped.episodes
    finally:
        if recorder:
            recorder.close()
        if window is not None:
            window.close()
    for i, row in enumerate(done):
        if not quiet:
            click.echo(_episode_line(i, row) + (f" video {recorder.paths[i]}" if recorder else ""))
    reason = f"stopped by {stop.name}" if stop.name else "window closed"
    where = f"{reason} during episode {len(done)} ({len(done)} of {episodes} finished)"
    if recorder and len(recorder.paths) > len(done):
        where += f"; its video up to there: {recorder.paths[len(done)]}"
    click.echo(where, err=True)
    sys.exit(exit_code(stop.name) if stop.name else 0)


SHIPPED = Path(__file__).resolve().parent / "save" / "pretrained"
"""Shipped agents, found from wherever `python main.py play` is run: ``world-W-S`` for one
stage, ``world-W`` for one agent of a whole world."""
PRETRAINED = SHIPPED / "world-1-1"
"""What ``play`` plays without PATH or --stage."""


def _shown(path: Path) -> str:
    """``path`` as a record keeps it: relative to the repository when inside it (a shipped
    agent's record then reads the same on every clone), else as given."""
    try:
        return str(path.resolve().relative_to(SHIPPED.parent.parent))
    except ValueError:
        return str(path)


def _shipped_agent(stage: str | None) -> Path:
    """The shipped agent for ``stage`` (its own, else its world's), or the 1-1 agent."""
    if stage is None:
        candidates = [PRETRAINED]
    else:
        candidates = [SHIPPED / f"world-{stage}", SHIPPED / f"world-{stage.split('-')[0]}"]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    what = f"for stage {stage}" if stage else f"at {PRETRAINED}"
    raise UserError(f"no shipped agent {what} yet; pass a run directory or checkpoint")


def _open_window(path: Path) -> Any:
    """The play window, opened hidden now so that a machine without a display is refused
    in one line before TensorFlow and the model load (see mario_dqn.window)."""
    from mario_dqn.window import NES_HEIGHT, NES_WIDTH, GameWindow, WindowError

    try:
        return GameWindow(f"mario-dqn: {path.resolve().name}", NES_WIDTH, NES_HEIGHT)
    except WindowError as err:
        raise UserError(str(err)) from None


def _recorder(path: Path, config: C.Config, video_dir: Path | None, explain: bool) -> Any:
    """Where ``play --record`` writes: one mp4 per episode of the game, or with ``explain``
    of the game, the network's input and its Q-values side by side."""
    from mario_dqn import checkpoint as ckpt
    from mario_dqn.video import EpisodeVideos

    checkpoint_dir = ckpt.resolve(path)
    run_dir = checkpoint_dir.parent.parent if checkpoint_dir.parent.name == "checkpoints" else checkpoint_dir
    target = video_dir or run_dir / "videos"
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {target}: {err.strerror}") from None
    fps = NES_FPS / config.env.frame_skip
    if explain:
        from mario_dqn.environment import action_meanings
        from mario_dqn.explain import ExplainVideos

        return ExplainVideos(target, checkpoint_dir.name, fps, action_meanings(config.env))
    return EpisodeVideos(target, checkpoint_dir.name, fps)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option("--episodes", type=AT_LEAST_ONE, default=1, show_default=True, help="Episodes to play.")
@click.option("--seed", type=int, default=0, show_default=True, help="Episode i uses seed SEED+i.")
@click.option("--epsilon", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Exploration rate (0 = greedy).")
@click.option("--record", is_flag=True, help="Write one mp4 per episode (full-resolution frames).")
@click.option("--video-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where --record writes videos. Default: the run's videos/ directory.")
@click.option("--explain", is_flag=True,
              help="With --record: each video frame shows, side by side, the game, the network's input "
                   "(its stacked 84x84 frames, oldest to newest) and every action's Q-value, the chosen "
                   "action highlighted (orange: greedy, magenta: random or a forced no-op start). "
                   "Files end in -explain-episode-NNN.mp4.")
@click.option("--window", is_flag=True,
              help="Show the game in a window while the agent plays (works with --record). Close it or "
                   "press Escape to stop. Needs a display; on a machine without one use --record, or "
                   "run under a virtual display with xvfb-run.")
@click.option("--speed", type=click.FloatRange(min=0.0),
              help="With --window: play at this multiple of the game's own speed (2 = twice as fast, "
                   "0.5 = half, 0 = as fast as the machine can). Default: 1, the NES's 60 frames/s.")
@click.option("--stage", "only_stage", metavar="W-S",
              help="Play this stage (e.g. 1-3). Without PATH: the shipped agent of that stage, or the "
                   "shipped agent of its world.")
def play(path, episodes, seed, epsilon, record, video_dir, explain, window, speed, only_stage):
    """Play a trained agent from PATH (a run directory or a checkpoint; default: the shipped agent).

    The model runs through the wrapper stack saved with it, never today's defaults.
    Watch it live with --window, record it with --record, and see what the network
    sees and values with --record --explain.
    """
    if video_dir is not None and not record:
        raise UserError("--video-dir only applies with --record")
    if explain and not record:
        raise UserError("--explain only applies with --record (it is a kind of video); add --record")
    if speed is not None and not window:
        raise UserError("--speed only applies with --window")
    stage = _check_stage(only_stage)
    if path is None:
        path = _shipped_agent(stage)
    from mario_dqn.signals import StopRequest

    viewer = _open_window(path) if window else None
    # Active from here on: a Ctrl-C while the model loads stops play before its first step.
    with StopRequest(finishing="closing the video file" if record else "stopping") as stop:
        try:
            config, agent = _load_for_play(path, stage)
            if viewer is not None:
                from mario_dqn.window import frame_interval_s

                viewer.set_interval(frame_interval_s(config.env.frame_skip, 1.0 if speed is None else speed,
                                                     NES_FPS))
            recorder = _recorder(path, config, video_dir, explain) if record else None
            result = _play_episodes(agent, config, episodes, seed, epsilon, recorder, stop, window=viewer)
        finally:
            if viewer is not None:
                viewer.close()
    for i, row in enumerate(result["per_episode"]):
        line = _episode_line(i, row)
        if recorder:
            line += f" video {recorder.paths[i]}"
        click.echo(line)


def _teacher_paths(stages: str, teachers: tuple[str, ...]) -> dict[str, Path]:
    """Each stage of ``--stages`` and its teacher: the ``--teacher W-S=PATH`` given, else
    the stage's shipped agent; a one-line refusal for anything that does not fit."""
    names = [_check_stage(part.strip()) for part in stages.split(",") if part.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise UserError("--stages: name at least two different stages, e.g. 1-1,1-2")
    given: dict[str, Path] = {}
    for text in teachers:
        stage, sep, path = text.partition("=")
        if not sep or not path:
            raise UserError(f"--teacher {text!r}: expected W-S=PATH, e.g. 1-2=save/runs/w12/checkpoints/latest")
        stage = _check_stage(stage.strip())
        if stage not in names:
            raise UserError(f"--teacher {text!r}: stage {stage} is not one of --stages {','.join(names)}")
        given[stage] = Path(path)
    paths = {}
    for stage in names:
        paths[stage] = given.get(stage, SHIPPED / f"world-{stage}")
        if not paths[stage].exists():
            raise UserError(f"no teacher for stage {stage}: {paths[stage]} does not exist; pass --teacher {stage}=PATH")
    return paths


@cli.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--stages", default="1-1,1-2,1-3,1-4", show_default=True,
              help="The student's stages, each taught by its own teacher.")
@click.option("--teacher", "teachers", multiple=True, metavar="W-S=PATH",
              help="The teacher of one stage: a run directory, checkpoint or shipped agent (repeatable). "
                   "Default: the stage's shipped agent, save/pretrained/world-W-S.")
@click.option("--rounds", type=AT_LEAST_ONE, default=5, show_default=True,
              help="Rounds of play-then-train: the teachers play the first, the student the others.")
@click.option("--episodes", type=AT_LEAST_ONE, default=30, show_default=True,
              help="Episodes played per stage and round for states: the first half greedy, the rest "
                   "with --epsilon.")
@click.option("--epochs", type=AT_LEAST_ONE, default=3, show_default=True,
              help="Passes over all states gathered so far, per round.")
@click.option("--epsilon", type=click.FloatRange(0.0, 1.0), default=0.05, show_default=True,
              help="Exploration of the second half of the episodes played for states.")
@click.option("--temperature", type=click.FloatRange(min=0.0, min_open=True), default=0.01, show_default=True,
              help="T of softmax(Q / T) on both sides of the loss (Rusu et al. 2016).")
@click.option("--learning-rate", type=click.FloatRange(min=0.0, min_open=True), default=3e-4,
              show_default=True, help="Adam's step size for the student.")
@click.option("--eval-episodes", type=click.IntRange(min=0), default=5, show_default=True,
              help="Greedy episodes per stage after each round; the round that does best there "
                   "(its worst stage first) is the student written. 0 = none: the last round.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the student's weights and shuffling.")
@click.option("--workers", type=AT_LEAST_ONE, default=2, show_default=True,
              help="Processes playing the episodes for states at once (the emulator is most of the time).")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def distill(out, stages, teachers, rounds, episodes, epochs, epsilon, temperature, learning_rate, eval_episodes,
            seed, workers, force, no_progress):
    """Distil one agent for several stages from one teacher per stage into OUT.

    Policy distillation (Rusu et al. 2016) with DAgger-style rounds: the teachers play
    their stages, the student learns their Q-values' ranking of actions (cross-entropy
    of the softmaxes at temperature T), then the student plays and the teachers label
    where it goes; the round whose student did best is kept. OUT is an ordinary agent
    directory: evaluate it per stage with
    'evaluate OUT --stage 1-3', play it with 'play OUT --stage 1-3'. A stop signal
    ends it without writing OUT.
    """
    from mario_dqn import distill as D
    from mario_dqn.evaluation import EvaluationStopped
    from mario_dqn.signals import StopRequest, exit_code

    paths = _teacher_paths(stages, teachers)
    if out.exists() and not force:
        raise UserError(f"{out} exists; pass --force to replace it")
    settings = D.DistillSettings(rounds=rounds, episodes=episodes, epochs=epochs, epsilon=epsilon,
                                 temperature=temperature, learning_rate=learning_rate,
                                 eval_episodes=eval_episodes, seed=seed, workers=workers)
    with StopRequest(finishing="stopping") as stop:
        loaded = {stage: _load_for_play(path, stage) for stage, path in paths.items()}
        bar = None

        def progress(batches: int) -> Any:
            nonlocal bar
            if no_progress:
                return None
            from tqdm import tqdm

            if bar is not None:
                bar.close()
            bar = tqdm(total=batches, desc="training the student", unit="batch", leave=False)
            return lambda: bar.update()

        try:
            student, config, record = D.distill(loaded, settings, log=click.echo,
                                                stop=lambda: stop.name is not None, progress=progress)
        except D.DistillError as err:
            raise UserError(str(err)) from None
        except (EvaluationStopped, D.DistillStopped):
            click.echo(f"stopped by {stop.name}; {out} not written", err=True)
            sys.exit(exit_code(stop.name))
        finally:
            if bar is not None:
                bar.close()
        if out.exists():
            shutil.rmtree(out)
        D.save_student(out, student, config, record, {stage: _shown(path) for stage, path in paths.items()})
    click.echo(f"wrote {out} ({record['wall_s'] / 60:.1f} min); per stage: "
               f"python main.py evaluate {out} --stage {next(iter(paths))} --episodes 20")


@cli.command("config")
@click.option("--preset", metavar="NAME", help="Show the values with this preset applied.")
@click.option("--presets", "list_presets", is_flag=True, help="List the presets (config/presets/) and stop.")
def show_config(preset, list_presets):
    """List every config key with its default and what it means (for --set KEY=VALUE)."""
    from config import presets

    if list_presets:
        for name in presets.available():
            click.echo(f"{name}\n    {presets.load(name)[0]}")
        return
    try:
        config = C.apply_overrides(C.Config(), _preset_overrides(preset))
    except C.ConfigError as err:
        raise UserError(f"preset {preset!r}: {err}") from None
    for key, value, doc in C.field_docs(config):
        shown = ",".join(value) if isinstance(value, tuple) else value
        click.echo(f"{key} = {shown}\n    {doc}")


@cli.command()
@click.option("--stages", help="Stages of the trials, e.g. 2-1,2-2 (each trial trains on one).")
@click.option("--seeds", default="0", show_default=True, help="Seeds of the trials, e.g. 0,1.")
@click.option("--grid", multiple=True, metavar="KEY=V1,V2",
              help="A config key and its values to try, e.g. agent.n_step=3,10 (repeatable; the trials "
                   "are every combination).")
@click.option("--preset", metavar="NAME", help="Every trial starts from this preset (as train --preset).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override for every trial (repeatable).")
@click.option("--steps", type=AT_LEAST_ONE, help="Agent steps of each trial. Default: the config's.")
@click.option("--envs", type=AT_LEAST_ONE, help="Environments per trial. Default: the config's.")
@click.option("--name", help="Campaign name; it goes to SAVE_DIR/NAME. Default: campaign- and a timestamp.")
@click.option("--save-dir", help=f"Root of the campaign directory. Default: {DEFAULTS.paths.save_dir}.")
@click.option("--address", help="Join this Ray cluster ('auto', or HOST:PORT of 'ray start --head'). "
                                "Default: a local Ray on this machine's cores.")
@click.option("--cpus-per-trial", type=click.FloatRange(min=0.0, min_open=True),
              help="CPUs a trial asks for. Default: its envs + 1, at most the largest node's.")
@click.option("--gpus-per-trial", type=click.FloatRange(min=0.0),
              help="GPUs a trial asks for (its learner uses it); trials without one see no GPU. Default: 0.")
@click.option("--max-retries", type=click.IntRange(min=0),
              help="Restarts of a trial whose worker, node or trainer died, from its newest checkpoint. "
                   "Default: 3.")
@click.option("--solve-episodes", type=click.IntRange(min=0), default=20, show_default=True,
              help="Episodes per kept model for the table's time-to-solve columns (0: not measured).")
@click.option("--progress-every", type=click.FloatRange(min=0.0), default=60.0, show_default=True,
              help="Seconds between progress lines of the running trials.")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path),
              help="Finish the campaign in this directory (its campaign.json); finished trials are not rerun.")
def campaign(stages, seeds, grid, preset, overrides, steps, envs, name, save_dir, address, cpus_per_trial,
             gpus_per_trial, max_retries, solve_episodes, progress_every, resume):
    """Run train runs over stages x seeds x a grid of --set values, on Ray.

    Each trial is an ordinary run in the campaign directory (play, evaluate and
    train --resume work on it); a trial whose worker or node dies continues from its
    newest checkpoint. Ctrl-C stops every trial with its checkpoint (exit 130);
    --resume finishes the rest. The results table goes to results.csv/.json/.md.
    """
    from mario_dqn import campaign as K

    try:
        if resume is not None:
            if stages or grid or preset or overrides or steps or envs or name or save_dir or seeds != "0":
                raise UserError("--resume finishes a campaign with its saved plan; only --address and the "
                                "per-trial resources may change")
            plan, campaign_dir = K.load_plan(resume, max_retries, cpus_per_trial, gpus_per_trial), resume
        else:
            if not stages:
                raise UserError("name the stages of the trials, e.g. --stages 2-1,2-2")
            plan, first = K.make_plan(stages, seeds, grid, steps=steps, envs=envs, preset=preset, sets=overrides,
                                      cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial or 0.0,
                                      max_retries=3 if max_retries is None else max_retries,
                                      solve_episodes=solve_episodes)
            campaign_dir = K.new_campaign_dir(Path(save_dir or first.paths.save_dir), name)
        rows = K.run(plan, campaign_dir, address=address, resume=resume is not None, log=click.echo,
                     progress_every=progress_every)
    except K.CampaignError as err:
        raise UserError(str(err)) from None
    except K.CampaignStopped as stopped:
        click.echo(str(stopped), err=True)
        from mario_dqn.signals import exit_code

        sys.exit(exit_code(stopped.signal_name))
    from mario_dqn.campaign_table import markdown

    click.echo(markdown(rows), nl=False)
    failed = [row["trial"] for row in rows if row["status"] != "done"]
    click.echo(f"results: {campaign_dir}/results.csv, .json, .md" + (f"; not done: {', '.join(failed)}" if failed else ""))
    if failed:
        sys.exit(1)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:  # usage errors and UserError: one line, exit 2 (RunError: 1)
        click.echo(f"error: {_one_line(err.format_message())}", err=True)
        sys.exit(err.exit_code if isinstance(err, RunError) else 2)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
