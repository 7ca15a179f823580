"""A play session: an agent's evaluation episodes shown in a window and/or recorded, stopped cleanly.

What ``play`` and ``evaluate`` run. The episodes follow :mod:`mario_dqn.evaluation`'s
protocol; this module wires the sinks (the window gets every game frame, a recorder
the frames or, explaining, every state with what the network saw and valued) and ends
the session between two steps on a stop signal or when the user closes the window. A
stop closes the video being written, so it is a playable mp4 of the episode up to
there, and the session says what finished (:class:`Played`); what to print and the
exit code are the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import config as C
from mario_dqn import run_dir
from mario_dqn.errors import UserInputError
from mario_dqn.evaluation import EpisodeRow, Evaluation, EvaluationStopped, evaluate

NES_FPS = 60
"""Frames per second of the NES: a recorded video at NES_FPS / frame_skip plays at game speed."""


@dataclass(frozen=True)
class Played:
    """How a session ended: the evaluation of all its episodes, or, when it was stopped,
    the episodes that finished and why it stopped."""

    rows: tuple[EpisodeRow, ...]
    """The episodes that finished, in order."""
    videos: tuple[Path, ...]
    """The recorded videos, one per episode begun (the last one cut short on a stop)."""
    requested: int
    """Episodes asked for."""
    evaluation: Evaluation | None = None
    """The whole evaluation; None when the session was stopped."""
    stopped_by: str | None = None
    """The stop signal's name (SIGINT, ...), or None."""

    @property
    def stopped(self) -> bool:
        return self.evaluation is None

    def stop_line(self) -> str:
        """One line on why and where a stopped session ended (and the cut-short video)."""
        done = len(self.rows)
        reason = f"stopped by {self.stopped_by}" if self.stopped_by else "window closed"
        where = f"{reason} during episode {done} ({done} of {self.requested} finished)"
        if len(self.videos) > done:
            where += f"; its video up to there: {self.videos[done]}"
        return where


def episode_line(i: int, row: EpisodeRow, video: Path | None = None) -> str:
    """One finished episode as ``play`` and ``evaluate`` print it."""
    line = (f"episode {i}: stage {row['stage']} return {row['return']:.2f} x_pos {row['x_pos']} "
            f"flag {'yes' if row['flag'] else 'no'}")
    return line + (f" video {video}" if video is not None else "")


def summary_lines(result: Evaluation) -> list[str]:
    """The per-stage lines (when several stages were played) and the pooled line."""
    lines = []
    if len(result.per_stage) > 1:
        for name, part in result.per_stage.items():
            lines.append(f"stage {name}: {part.episodes} episodes, mean return {part.mean_return:.2f}, "
                         f"mean x_pos {part.mean_x_pos:.0f}, flag rate {part.flag_rate:.0%}")
    lines.append(f"mean return {result.mean_return:.2f}, mean x_pos {result.mean_x_pos:.0f}, "
                 f"max x_pos {result.max_x_pos}, flag rate {result.flag_rate:.0%}")
    return lines


def open_window(path: Path) -> Any:
    """The play window, opened hidden now so that a machine without a display is refused
    in one line (WindowError) before TensorFlow and the model load (see mario_dqn.window)."""
    from mario_dqn.window import NES_HEIGHT, NES_WIDTH, GameWindow

    return GameWindow(f"mario-dqn: {Path(path).resolve().name}", NES_WIDTH, NES_HEIGHT)


def set_speed(window: Any, config: C.Config, speed: float | None) -> None:
    """Pace ``window`` at ``speed`` times the game's own speed (None: 1)."""
    from mario_dqn.window import frame_interval_s

    window.set_interval(frame_interval_s(config.env.frame_skip, 1.0 if speed is None else speed, NES_FPS))


def recorder(path: Path, config: C.Config, video_dir: Path | None = None, explain: bool = False) -> Any:
    """Where a recording session writes: one mp4 per episode of the game, or with
    ``explain`` of the game, the network's input and its Q-values side by side; in
    ``video_dir``, by default the run's videos/ directory."""
    from mario_dqn import checkpoint as ckpt
    from mario_dqn.video import EpisodeVideos

    kept = ckpt.kept_model_run(Path(path)) is not None
    name = Path(path).name[: -len(ckpt.KEPT_SUFFIX)] if kept else ckpt.resolve(Path(path)).name
    target = video_dir or run_dir.videos_dir(run_dir.run_of(path))
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserInputError(f"cannot create {target}: {err.strerror}") from None
    fps = NES_FPS / config.env.frame_skip
    if explain:
        from mario_dqn.environment import action_meanings
        from mario_dqn.explain import ExplainVideos

        return ExplainVideos(target, name, fps, action_meanings(config.env))
    return EpisodeVideos(target, name, fps)


def sinks(recorder: Any, window: Any) -> tuple[Callable[[int, Any], None] | None, Callable[[Any], None] | None]:
    """(on_frame, on_step) for :func:`~mario_dqn.evaluation.evaluate`: the window gets
    every game frame; a plain recorder (EpisodeVideos) the frames too, an explaining one
    (ExplainVideos) each state with what the network saw and valued."""
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


def play_episodes(agent: Any, config: C.Config, episodes: int, seed: int, epsilon: float, stop: Any,
                  recorder: Any = None, window: Any = None) -> Played:
    """Play ``episodes`` evaluation episodes (seeds ``seed + i``), stopping between two
    steps when ``stop`` (an active :class:`~mario_dqn.signals.StopRequest`) has caught a
    signal or the user has closed ``window``. The recorder and the window are closed
    whatever happens."""
    on_frame, on_step = sinks(recorder, window)
    try:
        result = evaluate(agent, config, episodes, seed, epsilon, on_frame,
                          stop=lambda: stop.name is not None or (window is not None and window.closed),
                          on_step=on_step)
        rows, evaluation = result.per_episode, result
    except EvaluationStopped as stopped:
        rows, evaluation = tuple(stopped.episodes), None
    finally:
        if recorder:
            recorder.close()
        if window is not None:
            window.close()
    return Played(tuple(rows), tuple(recorder.paths) if recorder else (), episodes, evaluation,
                  stop.name if evaluation is None else None)
