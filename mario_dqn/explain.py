"""Videos of what the agent sees and values (``python main.py play --record --explain``).

Each video frame puts three panels side by side:

    | the game, full resolution | the network's input:     | Q-value of every action,    |
    | (scaled 2x)               | its 4 stacked 84x84      | the chosen one highlighted, |
    |                           | frames, oldest to newest | greedy or random            |
    |                           | episode, step, x_pos,    |                             |
    |                           | return so far, epsilon   |                             |

The middle panel is the observation itself, the uint8 array the network is given,
only scaled up (nearest-neighbour, so each input pixel stays a visible square): what
the frame-skip, grayscale, resize and stack wrappers left of the screen. The right one
shows the Q-values the action was chosen from (``evaluate`` computes them with the
agent's own compiled forward pass), on a scale that makes their differences visible
(see :func:`bar_scale`), each value printed beside its bar. Under the input frames, the
state's place in its episode: how far Mario has got (x_pos) and what it has earned so
far, so the values can be read against the progress they predict.

:func:`compose` is a pure function of its inputs (tests draw one frame by hand);
:func:`compose_view` draws one ``mario_dqn.evaluation.StepView`` with it, and
:class:`ExplainVideos` feeds it from ``mario_dqn.evaluation.evaluate``'s ``on_step`` and writes
one mp4 per episode through :class:`mario_dqn.video.EpisodeVideos`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Sequence

import cv2
import numpy as np

from mario_dqn.video import EpisodeVideos

if TYPE_CHECKING:  # only for the annotations: evaluation builds the env, drawing needs none of it
    from mario_dqn.evaluation import StepView

HEIGHT = 480
"""Height of a composed frame: the NES screen (240 rows) scaled 2x."""
GAME_SCALE = 2
STACK_SCALE = 2
"""Each 84x84 input frame is shown at 168x168."""
GAME_WIDTH, STACK_WIDTH, Q_WIDTH = 512, 368, 400
"""Panel widths; their sum (1280) and HEIGHT are multiples of 16, as the video encoder wants."""
WIDTH = GAME_WIDTH + STACK_WIDTH + Q_WIDTH

BACKGROUND = (24, 24, 32)
TEXT = (235, 235, 235)
DIM_TEXT = (150, 150, 160)
BAR = (110, 120, 150)
GREEDY = (255, 150, 30)
"""The chosen action's bar when the network chose it (its argmax)."""
RANDOM = (230, 60, 200)
"""The chosen action's bar when epsilon chose it at random, or it was a forced no-op."""
AXIS = (200, 200, 200)
"""The line the bars start from."""
FONT = cv2.FONT_HERSHEY_SIMPLEX


class Box(NamedTuple):
    """A rectangle of the composed frame: rows ``top:top+height``, columns ``left:left+width``."""

    top: int
    left: int
    height: int
    width: int

    def of(self, image: np.ndarray) -> np.ndarray:
        return image[self.top:self.top + self.height, self.left:self.left + self.width]


STACK_CELL = 84 * STACK_SCALE
_CELL_GAP = (STACK_WIDTH - 2 * STACK_CELL) // 3


def stack_box(k: int) -> Box:
    """Where input frame ``k`` (0 = oldest) is drawn: a 2x2 grid read like text, oldest
    top-left, newest bottom-right, each with its label above it."""
    row, col = divmod(k, 2)
    return Box(top=58 + row * (STACK_CELL + 34), left=GAME_WIDTH + _CELL_GAP + col * (STACK_CELL + _CELL_GAP),
               height=STACK_CELL, width=STACK_CELL)


STATUS_BOX = Box(top=HEIGHT - 48, left=GAME_WIDTH, height=48, width=STACK_WIDTH)
"""Under the input frames: the episode, step, x_pos, return so far and epsilon (two lines)."""

_Q_TOP, _Q_BOTTOM = 56, HEIGHT - 80
"""The rows the bars share; below them, the decision is spelled out."""
_BAR_LEFT = GAME_WIDTH + STACK_WIDTH + 140
"""Action names go left of the bars, values right of them."""
_BAR_WIDTH = 160


def _pitch(num_actions: int) -> int:
    """Rows per action: the bars share the panel, but 5 actions do not get 70-row bars."""
    return min((_Q_BOTTOM - _Q_TOP) // num_actions, 44)


def bar_scale(q_values: np.ndarray) -> tuple[float, float]:
    """The values at a bar's left end and at the full width of its band.

    The Q-values of one state are close together (they are all about the return still
    to come, ~20 for the shipped agent) and differ by what decides the action, so the
    bars do not start at zero, where they would all look the same length: they start
    half the values' spread below the lowest, and the highest fills the band. The
    panel prints the scale and every value beside its bar.
    """
    top, spread = float(np.max(q_values)), float(np.ptp(q_values))
    return top - 1.5 * spread if spread > 0 else top - 1.0, top


def bar_box(action: int, num_actions: int) -> Box:
    """The band in which ``action``'s bar is drawn, from its left end (see :func:`bar_scale`)."""
    pitch = _pitch(num_actions)
    height = max(6, int(pitch * 0.6))
    return Box(top=_Q_TOP + action * pitch + (pitch - height) // 2, left=_BAR_LEFT, height=height,
               width=_BAR_WIDTH)


def _text(image: np.ndarray, text: str, x: int, y: int, scale: float = 0.5, color: tuple = TEXT,
          thickness: int = 1) -> None:
    """Draw ``text`` with its baseline at row ``y``."""
    cv2.putText(image, text, (x, y), FONT, scale, color, thickness, cv2.LINE_AA)


def _game_panel(image: np.ndarray, frame: np.ndarray) -> None:
    game = np.repeat(np.repeat(frame, GAME_SCALE, axis=0), GAME_SCALE, axis=1)
    h, w = game.shape[:2]
    top = (HEIGHT - h) // 2
    image[top:top + h, :min(w, GAME_WIDTH)] = game[:, :GAME_WIDTH]


def _stack_panel(image: np.ndarray, obs: np.ndarray) -> None:
    left = GAME_WIDTH
    stack = obs.shape[-1]
    _text(image, f"network input {obs.shape[0]}x{obs.shape[1]}x{stack}", left + 14, 26, 0.55)
    for k in range(min(stack, 4)):  # 4 is the default stack; a longer one shows its newest 4
        channel = k + stack - min(stack, 4)
        box = stack_box(k)
        age = stack - 1 - channel
        label = "t (newest)" if age == 0 else f"t-{age}" + (" (oldest)" if channel == 0 else "")
        _text(image, label, box.left, box.top - 8, 0.45, DIM_TEXT)
        cell = np.repeat(np.repeat(obs[..., channel], STACK_SCALE, axis=0), STACK_SCALE, axis=1)
        box.of(image)[...] = cell[:box.height, :box.width, None]


def _status(image: np.ndarray, episode: int, step: int, x_pos: int, episode_return: float,
            epsilon: float) -> None:
    left, top = STATUS_BOX.left + 14, STATUS_BOX.top
    _text(image, f"episode {episode}   step {step}   x_pos {x_pos}", left, top + 18)
    _text(image, f"return so far {episode_return:.2f}   epsilon {epsilon:g}", left, top + 40)


def _decision(action: int | None, greedy: int | None, explored: bool, noop: bool, epsilon: float) -> str:
    if action is None:
        return "episode over: no decision"
    if noop:
        return "forced no-op start (not the agent's)"
    if explored:
        return f"random action (epsilon {epsilon:g})"
    return "greedy: the highest Q-value"


def _q_panel(image: np.ndarray, q_values: np.ndarray | None, action: int | None, names: Sequence[str],
             explored: bool, noop: bool, epsilon: float) -> None:
    left = GAME_WIDTH + STACK_WIDTH
    _text(image, "Q-value of each action", left + 14, 26, 0.55)
    if q_values is None:
        _text(image, _decision(None, None, False, False, epsilon), left + 14, HEIGHT - 48, 0.5, DIM_TEXT)
        return
    q = np.asarray(q_values, np.float64)
    greedy = int(np.argmax(q))
    low, high = bar_scale(q)
    bottom = _Q_TOP + len(q) * _pitch(len(q))
    for a, (name, value) in enumerate(zip(names, q)):
        box = bar_box(a, len(q))
        length = max(1, round((value - low) / (high - low) * box.width))
        color = BAR if a != action else (RANDOM if explored or noop else GREEDY)
        box.of(image)[:, :length] = color
        middle = box.top + box.height // 2 + 5
        _text(image, name or "(none)", left + 14, middle, 0.45, TEXT if a == action else DIM_TEXT)
        _text(image, f"{value:.2f}" + (" *" if a == greedy else ""), box.left + box.width + 8, middle, 0.45,
              TEXT if a == action else DIM_TEXT)
    image[_Q_TOP - 4:bottom + 4, _BAR_LEFT - 1] = AXIS
    _text(image, f"bars from {low:.2f} to {high:.2f}", _BAR_LEFT, bottom + 22, 0.4, DIM_TEXT)
    chosen = names[action] if action is not None else "-"
    _text(image, f"action: {chosen}", left + 14, HEIGHT - 48, 0.55,
          RANDOM if explored or noop else GREEDY, 1)
    _text(image, _decision(action, greedy, explored, noop, epsilon), left + 14, HEIGHT - 22, 0.45, DIM_TEXT)


def compose(frame: np.ndarray, obs: np.ndarray, q_values: np.ndarray | None, action: int | None,
            action_names: Sequence[str], *, explored: bool = False, noop: bool = False, epsilon: float = 0.0,
            episode: int = 0, step: int = 0, x_pos: int = 0, episode_return: float = 0.0) -> np.ndarray:
    """One (HEIGHT, WIDTH, 3) uint8 RGB video frame: game | network input | Q-values.

    ``frame`` is the (240, 256, 3) screen, ``obs`` the (84, 84, stack) uint8 input,
    ``q_values`` (A,) the values the action was chosen from (None: no decision, the
    episode is over). The chosen action's bar is orange when it was the greedy one,
    magenta when epsilon picked it at random or it was a forced no-op; ``*`` marks the
    highest value. A longer bar is a higher value, on the scale of :func:`bar_scale`.
    Under the input frames (:data:`STATUS_BOX`) go ``episode``, ``step`` (agent steps
    taken before this state), ``x_pos``, ``episode_return`` (the return so far) and
    ``epsilon``: the fields of ``mario_dqn.evaluation.StepView``.
    """
    image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    image[...] = BACKGROUND
    _game_panel(image, frame)
    _stack_panel(image, obs)
    _status(image, episode, step, x_pos, episode_return, epsilon)
    _q_panel(image, q_values, action, action_names, explored, noop, epsilon)
    return image


def compose_view(view: StepView, action_names: Sequence[str]) -> np.ndarray:
    """:func:`compose` of one state as ``evaluate`` hands it to ``on_step``: the frame
    :class:`ExplainVideos` writes for it, and one to look at on its own (the notebook)."""
    return compose(view.frame, view.obs, view.q_values, view.action, action_names, explored=view.explored,
                   noop=view.noop, epsilon=view.epsilon, episode=view.episode, step=view.step, x_pos=view.x_pos,
                   episode_return=view.episode_return)


class ExplainVideos:
    """``evaluate``'s ``on_step``: compose each state and write one mp4 per episode.

    The files are ``<prefix>-explain-episode-NNN.mp4`` (``play --record`` without
    ``--explain`` writes ``<prefix>-episode-NNN.mp4``), with one frame per state (the
    reset one, then one per agent step), at the game's speed.
    """

    def __init__(self, directory: Path, prefix: str, fps: float, action_names: Sequence[str]) -> None:
        self.action_names = list(action_names)
        self._videos = EpisodeVideos(directory, f"{prefix}-explain", fps)

    @property
    def paths(self) -> list[Path]:
        return self._videos.paths

    def on_step(self, view: StepView) -> None:
        """Write ``view`` as its episode's next frame."""
        self._videos.on_frame(view.episode, compose_view(view, self.action_names))

    def close(self) -> None:
        self._videos.close()
