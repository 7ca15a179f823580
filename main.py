"""mario-dqn command line: train, evaluate, play, distill, campaign and inspect the configuration.

This module parses options, calls the package and maps its errors: every user mistake
ends with one line on stderr (``error: ...``) and exit code 2, never a traceback, and
never touches an existing run. A write that fails while training (disk full, an
unwritable directory) stops the run with one line and exit code 1; the checkpoints
written before it stay whole, and --resume continues from the newest. The work itself
(run directories, evaluation, play sessions, shipped agents) is the package's.
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

import config as C
from config import presets
from mario_dqn import init_from as IF
from mario_dqn import run_dir as RD
from mario_dqn import shipped
from mario_dqn.campaign_plan import plan_default
from mario_dqn.checkpoint import CheckpointError, model_source
from mario_dqn.distill_rounds import RoundStore, identity
from mario_dqn.distill_settings import DistillError, DistillSettings
from mario_dqn.errors import MarioDQNError, one_line

DEFAULTS = C.Config()
DISTILL = DistillSettings()
"""The distill command's defaults: its settings object's, never numbers repeated here."""


class UserError(click.ClickException):
    """A refusal of the command line itself (options that do not go together): one line, exit 2."""

    exit_code = 2


PACKAGE_ERRORS = (MarioDQNError, C.ConfigError, CheckpointError, DistillError)
"""The errors a user can cause, as the package and config raise them: one line each;
exit code 2 unless the error carries its own (a failed write while training: 1)."""

AT_LEAST_ONE = click.IntRange(min=1)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """Train a Deep Q-Network to play Super Mario Bros from pixels.

    \b
    python main.py train                     train on World 1-1 with the defaults
    python main.py train --world 2 --stage 1 --preset any-stage
    python main.py train --resume RUN_DIR    continue a stopped run exactly
    python main.py evaluate RUN_DIR --json   greedy evaluation on fixed seeds
    python main.py play --stage 1-3 --window watch the shipped 1-3 agent play
    python main.py campaign --stages 2-1,2-2 --seeds 0,1   many runs, on Ray
    python main.py config                    every config key, its default and meaning
    """


def _check_stage(text: str | None) -> str | None:
    """A stage option's value as 'W-S', or a one-line refusal."""
    if text is None:
        return None
    try:
        world, stage = C.parse_stage(text)
    except C.ConfigError as err:
        raise UserError(f"--stage: {err}") from None
    return f"{world}-{stage}"


def _resolve_train_config(world: int | None, stage: int | None, stages: str | None, steps: int | None,
                          envs: int | None, seed: int | None, save_dir: str | None,
                          overrides: tuple[str, ...], preset: str | None = None,
                          init_from: str | None = None) -> C.Config:
    """The defaults, then the preset, then ``--set``, then the named options: later wins
    (config.presets.resolve, which the campaign's trials go through too)."""
    if stages and (world is not None or stage is not None):
        raise UserError("--stages cannot be combined with --world/--stage")
    one = f"{world or 1}-{stage or 1}" if world is not None or stage is not None else None
    return presets.resolve(preset, overrides, {"env.stages": stages or one, "runner.total_steps": steps,
                                               "runner.num_envs": envs, "runner.seed": seed,
                                               "paths.save_dir": save_dir, "runner.init_from": init_from})


@cli.command(short_help="Train an agent on a stage (or several); resumable, Ctrl-C safe.")
@click.option("--world", type=int, help="World number, 1 to 8 (with --stage). Default: 1.")
@click.option("--stage", type=int, help="Stage number within --world, 1 to 4 (3-2 is --world 3 --stage 2). Default: 1.")
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
@click.option("--init-from", metavar="PATH",
              help="Start from this agent's policy weights instead of fresh ones (a run directory, "
                   "checkpoint or shipped agent, built with the same network): fine-tuning. Optimizer, "
                   "replay and epsilon schedule start as for a new run.")
@click.option("--no-progress", is_flag=True, help="No progress bar (for logs and CI).")
def train(world, stage, stages, steps, envs, seed, name, save_dir, resume, force, preset, overrides, init_from,
          no_progress):
    """Train a DQN agent; writes config.json, checkpoints/, metrics.csv and TensorBoard logs.

    Stop it any time with Ctrl-C (or SIGTERM, or by closing the terminal): it finishes
    the step, writes a checkpoint and exits 130 (143, 129); --resume continues with
    exactly the numbers an uninterrupted run would give.
    """
    # Every check that needs no TensorFlow comes first, so a mistake is refused at once.
    if resume is not None and (any(v is not None for v in (world, stage, stages, envs, seed, name, save_dir,
                                                           preset, init_from)) or overrides or force):
        raise UserError("--resume continues a run with its saved config; only --steps may change")
    from mario_dqn.signals import StopRequest

    run_dir, trainer, restoring = resume, None, None
    # Stop signals are caught from here, not only once the loop runs: one sent while
    # TensorFlow loads or a replay memory is restored then stops the run at its start,
    # with a checkpoint, instead of being lost (see StopRequest).
    with StopRequest() as stop:
        try:
            if resume is not None:
                config, checkpoint = RD.resume_point(resume, steps)
                from mario_dqn.runner import Trainer

                click.echo(f"resuming {resume} from {checkpoint.path.name} (step {checkpoint.state['step']:,})")
                trainer = Trainer(config, resume, progress=not no_progress, stop=stop)
                restoring = checkpoint.path / "state.json"
                trainer.restore(checkpoint)
                restoring = None
            else:
                config = _resolve_train_config(world, stage, stages, steps, envs, seed, save_dir, overrides, preset,
                                               init_from)
                start = IF.load_start(config) if config.runner.init_from else None  # refused before the run exists
                run_dir = RD.new_run_dir(config, name, force)
                from mario_dqn.runner import Trainer

                click.echo(f"run directory: {run_dir}")
                hint = _recipe_hint(config.env.stages, preset)
                if hint:
                    click.echo(hint, err=True)
                trainer = Trainer(config, run_dir, progress=not no_progress, stop=stop)
                if start is not None:
                    source = IF.record(run_dir, config.runner.init_from)
                    trainer.start_from(start)
                    click.echo(f"starting from the policy of {config.runner.init_from} (step {source['step']:,}, "
                               f"model sha256 {source['model_sha256'][:12]})")
            from mario_dqn.runner import run_to_the_end

            trainer, result = run_to_the_end(trainer)
        except Exception as err:
            if trainer is not None:
                trainer.envs.close()  # the env processes started; a refusal must not leave them behind
            mapped = None if isinstance(err, click.ClickException) else RD.training_failure(err, run_dir, restoring)
            if mapped is None or mapped is err:  # a refusal as it is, or a bug with its traceback
                raise
            raise mapped from None
    if result["stopped_by"]:  # the trainer has said where it stopped, in one line
        from mario_dqn.signals import exit_code

        sys.exit(exit_code(result["stopped_by"]))
    click.echo(f"done: step {result['step']:,}, {result['episodes']} episodes, {result['flags']} flags, "
               f"best x_pos {result['best_x']}; checkpoint {result['checkpoint']}")


def _recipe_hint(stages: tuple[str, ...], preset: str | None) -> str | None:
    """A note when a stage beyond World 1 is trained with World 1's defaults alone: they
    reach the flag on 1-1, while the stages of Worlds 2-4 were trained with ``any-stage``."""
    beyond = [stage for stage in stages if not stage.startswith("1-")]
    if not beyond or preset is not None:
        return None
    return (f"note: {', '.join(beyond)} with the defaults (tuned on 1-1); the recipe the agents of Worlds 2-4 "
            f"were trained with is --preset any-stage (README's stage table)")


def _end_stopped(played: Any, quiet: bool = False) -> None:
    """After a stopped play session: what finished, then one line on stderr, and the
    signal's exit code (SIGINT: 130), or 0 for a closed window (what the user asked)."""
    from mario_dqn.play_session import episode_line
    from mario_dqn.signals import exit_code

    if not quiet:
        for i, row in enumerate(played.rows):
            click.echo(episode_line(i, row, played.videos[i] if played.videos else None))
    click.echo(played.stop_line(), err=True)
    sys.exit(exit_code(played.stopped_by) if played.stopped_by else 0)


@cli.command(short_help="Flag rate, x_pos and return on fixed seeds (per stage too).")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option("--episodes", type=AT_LEAST_ONE, default=5, show_default=True, help="Episodes to play.")
@click.option("--seed", type=int, default=0, show_default=True, help="Episode i uses seed SEED+i.")
@click.option("--epsilon", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Exploration rate (0 = greedy).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--stage", "only_stage", metavar="W-S",
              help="Evaluate on this stage only (e.g. 1-3; for an agent of several stages, or to try an "
                   "agent on a stage it was not trained on). Default: the agent's own stages. Without "
                   "PATH: the shipped agent of that stage, or the shipped agent of its world.")
def evaluate(path, episodes, seed, epsilon, as_json, only_stage):
    """Evaluate a run, checkpoint, shipped agent or kept model (RUN/models/step-N.weights.h5;
    default: the shipped agent) on fixed seeds: mean return, x_pos and flag rate (pooled,
    and per stage when there are several)."""
    from mario_dqn.play_session import episode_line, play_episodes, summary_lines
    from mario_dqn.signals import StopRequest

    stage = _check_stage(only_stage)
    if path is None:
        path = shipped.shipped_agent(stage)
    with StopRequest(finishing="stopping") as stop:  # from the start: a Ctrl-C while loading counts too
        config, agent = shipped.load_for_play(path, stage)
        played = play_episodes(agent, config, episodes, seed, epsilon, stop)
    if played.stopped:
        _end_stopped(played, quiet=as_json)
    if as_json:
        click.echo(json.dumps(played.evaluation.to_json()))
        return
    for i, row in enumerate(played.rows):
        click.echo(episode_line(i, row))
    for line in summary_lines(played.evaluation):
        click.echo(line)


@cli.command(short_help="Watch an agent: a window, mp4s, or the network's view.")
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
    """Play a trained agent from PATH (a run directory, a checkpoint, a kept model
    RUN/models/step-N.weights.h5; default: the shipped agent).

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
        path = shipped.shipped_agent(stage)
    from mario_dqn import play_session as P
    from mario_dqn.signals import StopRequest

    viewer = P.open_window(path) if window else None  # no display: refused before the model loads
    # Active from here on: a Ctrl-C while the model loads stops play before its first step.
    with StopRequest(finishing="closing the video file" if record else "stopping") as stop:
        try:
            config, agent = shipped.load_for_play(path, stage)
            if viewer is not None:
                P.set_speed(viewer, config, speed)
            recorder = P.recorder(path, config, video_dir, explain) if record else None
            played = P.play_episodes(agent, config, episodes, seed, epsilon, stop, recorder, viewer)
        finally:
            if viewer is not None:
                viewer.close()
    if played.stopped:
        _end_stopped(played)
    for i, row in enumerate(played.rows):
        click.echo(P.episode_line(i, row, played.videos[i] if played.videos else None))


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
            raise UserError(f"--teacher {text!r}: expected W-S=PATH, e.g. 1-2=save/runs/w12 or 1-2=save/pretrained/world-1-2")
        stage = _check_stage(stage.strip())
        if stage not in names:
            raise UserError(f"--teacher {text!r}: stage {stage} is not one of --stages {','.join(names)}")
        given[stage] = Path(path)
    return shipped.teacher_paths(names, given)


@cli.command(short_help="One agent for several stages from one teacher per stage.")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--stages", default="1-1,1-2,1-3,1-4", show_default=True,
              help="The student's stages, each taught by its own teacher.")
@click.option("--teacher", "teachers", multiple=True, metavar="W-S=PATH",
              help="The teacher of one stage: a run directory, checkpoint or shipped agent (repeatable). "
                   "Default: the stage's shipped agent, save/pretrained/world-W-S.")
@click.option("--rounds", type=AT_LEAST_ONE, default=DISTILL.rounds, show_default=True,
              help="Rounds of play-then-train: the teachers play the first, the student the others.")
@click.option("--episodes", type=AT_LEAST_ONE, default=DISTILL.episodes, show_default=True,
              help="Episodes played per stage and round for states: the first half greedy, the rest "
                   "with --epsilon.")
@click.option("--epochs", type=AT_LEAST_ONE, default=DISTILL.epochs, show_default=True,
              help="Passes over all states gathered so far, per round.")
@click.option("--epsilon", type=click.FloatRange(0.0, 1.0), default=DISTILL.epsilon, show_default=True,
              help="Exploration of the second half of the episodes played for states.")
@click.option("--temperature", type=click.FloatRange(min=0.0, min_open=True), default=DISTILL.temperature,
              show_default=True, help="T of softmax(Q / T) on both sides of the loss (Rusu et al. 2016).")
@click.option("--learning-rate", type=click.FloatRange(min=0.0, min_open=True), default=DISTILL.learning_rate,
              show_default=True, help="Adam's step size for the student.")
@click.option("--eval-episodes", type=click.IntRange(min=0), default=DISTILL.eval_episodes, show_default=True,
              help="Greedy episodes per stage after each round; the round that does best there "
                   "(its worst stage first) is the student written. 0 = none: the last round.")
@click.option("--seed", type=int, default=DISTILL.seed, show_default=True,
              help="Seed of the student's weights and shuffling.")
@click.option("--workers", type=AT_LEAST_ONE, default=DISTILL.workers, show_default=True,
              help="Processes playing the episodes for states at once (the emulator is most of the time).")
@click.option("--average-steps", type=click.IntRange(min=0), default=DISTILL.average_steps, show_default=True,
              metavar="N", help="Play, evaluate and write a moving average of the student's weights over about "
                                "the last N gradient steps (carried across rounds) instead of the weights "
                                "themselves, to damp the swings between rounds; training is unchanged. 0 = off.")
@click.option("--average-warmup", is_flag=True, default=DISTILL.average_warmup,
              help="Warm the average up (TensorFlow's num_updates rule): after gradient step n it spans "
                   "about the last n/10 steps until that reaches N, so the first round's student is not "
                   "part random weights. Needs --average-steps.")
@click.option("--network", type=click.Choice(C.NETWORKS), default=None,
              help="The student's torso (see 'config': agent.network). Default: its teachers'; wide doubles "
                   "the hidden units that hold every stage's policy.")
@click.option("--keep-rounds", is_flag=True,
              help="Also write each round's student, as it finishes, to OUT.rounds/round-NNN (agent directories "
                   "like OUT), to check the round choice on more episodes than --eval-episodes.")
@click.option("--force", is_flag=True, help="Replace OUT (and OUT.rounds) if it exists, and start over instead of "
                                           "continuing the rounds a stopped distillation kept in OUT.partial.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def distill(out, stages, teachers, rounds, episodes, epochs, epsilon, temperature, learning_rate, eval_episodes,
            seed, workers, average_steps, average_warmup, network, keep_rounds, force, no_progress):
    """Distil one agent for several stages from one teacher per stage into OUT.

    Policy distillation (Rusu et al. 2016) with DAgger-style rounds: the teachers play
    their stages, the student learns their Q-values' ranking of actions (cross-entropy
    of the softmaxes at temperature T), then the student plays and the teachers label
    where it goes; the round whose student did best is kept. OUT is an ordinary agent
    directory: evaluate it per stage with
    'evaluate OUT --stage 1-3', play it with 'play OUT --stage 1-3'.

    A stop signal (Ctrl-C) ends it without writing OUT; the rounds it finished stay in
    OUT.partial, and the same command continues after them (--workers may change, and
    --keep-rounds, which writes the rounds run with it).
    """
    from mario_dqn import distill as D
    from mario_dqn.evaluation import EvaluationStopped
    from mario_dqn.signals import StopRequest, exit_code

    paths = _teacher_paths(stages, teachers)
    D.check_out(out, force)
    settings = D.DistillSettings(rounds=rounds, episodes=episodes, epochs=epochs, epsilon=epsilon,
                                 temperature=temperature, learning_rate=learning_rate,
                                 eval_episodes=eval_episodes, seed=seed, workers=workers,
                                 average_steps=average_steps, average_warmup=average_warmup, network=network)
    with StopRequest(finishing="stopping") as stop:
        loaded = {stage: shipped.load_for_play(path, stage) for stage, path in paths.items()}
        shown = {stage: shipped.shown(path) for stage, path in paths.items()}
        sources = {stage: model_source(path, shown[stage]) for stage, path in paths.items()}  # what taught
        store = RoundStore(out.with_name(out.name + ".partial"),
                           identity(asdict(settings), {s: src["model_sha256"] for s, src in sources.items()}))
        each_round = None  # --keep-rounds: (student, config, record) -> OUT.rounds/round-NNN
        if keep_rounds:
            rounds_dir = out.with_name(out.name + ".rounds")
            D.check_rounds_out(rounds_dir, store.exists() and not force, force)  # before --force removes anything
            each_round = functools.partial(D.write_round, rounds_dir, teachers=shown, sources=sources)
        if force:
            store.remove()
        elif store.exists():
            store.check()
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
                                                stop=lambda: stop.name is not None, progress=progress, store=store,
                                                each_round=each_round)
        except (EvaluationStopped, D.DistillStopped):
            done = store.rounds_done() if store.exists() else 0
            kept = (f"; {'round 1' if done == 1 else f'rounds 1-{done}'} kept in {store.directory}, "
                    "the same command continues" if done else "")
            click.echo(f"stopped by {stop.name}; {out} not written{kept}", err=True)
            sys.exit(exit_code(stop.name))
        finally:
            if bar is not None:
                bar.close()
        D.replace_out(out)
        D.save_student(out, student, config, record, shown, sources)
        store.remove()
    click.echo(f"wrote {out} ({record['wall_s'] / 60:.1f} min); per stage: "
               f"python main.py evaluate {out} --stage {next(iter(paths))} --episodes 20")


@cli.command("config", short_help="Every config key, its default and meaning; the presets.")
@click.option("--preset", metavar="NAME", help="Show the values with this preset applied.")
@click.option("--presets", "list_presets", is_flag=True, help="List the presets (config/presets/) and stop.")
def show_config(preset, list_presets):
    """List every config key with its default and what it means (for --set KEY=VALUE)."""
    if list_presets:
        for name in presets.available():
            click.echo(f"{name}\n    {presets.load(name)[0]}")
        return
    try:
        config = presets.resolve(preset)
    except C.ConfigError as err:  # name the preset once: load's own errors already do
        message = str(err)
        named = message.startswith(("unknown preset ", "preset "))
        raise UserError(message if named else f"preset {preset!r}: {message}") from None
    for key, value, doc in C.field_docs(config):
        shown = ",".join(value) if isinstance(value, tuple) else value
        click.echo(f"{key} = {shown}\n    {doc}")


@cli.command(short_help="Many train runs (stages x seeds x a grid) on Ray.")
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
                   f"Default: {plan_default('max_retries')}; with --resume it replaces the saved value.")
@click.option("--solve-episodes", type=click.IntRange(min=0),
              help="Episodes per kept model for the table's time-to-solve columns (0: not measured). "
                   f"Default: {plan_default('solve_episodes')}; with --resume it replaces the saved value.")
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
                raise UserError("--resume finishes a campaign with its saved plan; only --address, the "
                                "per-trial resources, --max-retries and --solve-episodes may change")
            plan = K.load_plan(resume, max_retries, cpus_per_trial, gpus_per_trial, solve_episodes)
            campaign_dir = resume
        else:
            if not stages:
                raise UserError("name the stages of the trials, e.g. --stages 2-1,2-2")
            plan, first = K.make_plan(stages, seeds, grid, steps=steps, envs=envs, preset=preset, sets=overrides,
                                      cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial or 0.0,
                                      max_retries=max_retries, solve_episodes=solve_episodes)
            campaign_dir = K.new_campaign_dir(Path(save_dir or first.paths.save_dir), name)
        rows = K.run(plan, campaign_dir, address=address, resume=resume is not None, log=click.echo,
                     progress_every=progress_every)
    except K.CampaignError as err:
        raise UserError(str(err)) from None
    except OSError as err:  # the campaign's own files (campaign.json, STOP, the table): a failed write, exit 1
        click.echo(f"error: {one_line(f'cannot write {err.filename or resume}: {err.strerror or err}')}; the "
                   "trials' runs keep their checkpoints: 'campaign --resume DIR' continues", err=True)
        sys.exit(1)
    except K.CampaignStopped as stopped:
        click.echo(str(stopped), err=True)
        from mario_dqn.signals import exit_code

        sys.exit(exit_code(stopped.signal_name))
    from mario_dqn.campaign_table import FINISHED, markdown

    click.echo(markdown(rows), nl=False)
    failed = [row["trial"] for row in rows if row["status"] not in FINISHED]
    click.echo(f"results: {campaign_dir}/results.csv, .json, .md"
               + (f"; not done: {', '.join(failed)}" if failed else ""))
    if failed:
        sys.exit(1)


def main() -> None:
    """The ``mario-dqn`` command: click's parsing, then every error a user can cause as
    one ``error:`` line and its exit code (2; a failed write while training: 1)."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:  # usage errors and UserError: one line, exit 2
        click.echo(f"error: {one_line(err.format_message())}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except PACKAGE_ERRORS as err:
        click.echo(f"error: {one_line(str(err))}", err=True)
        sys.exit(getattr(err, "exit_code", 2))


if __name__ == "__main__":
    main()
