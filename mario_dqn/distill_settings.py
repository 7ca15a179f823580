"""The ``distill`` command's settings and its refusal, apart from the distillation itself,
so the command line can show their defaults without loading the emulator and TensorFlow
(mario_dqn.distill imports both through evaluation)."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import NETWORKS


@dataclass(frozen=True)
class DistillSettings:
    """How a student is distilled (the ``distill`` command's options)."""

    rounds: int = 5
    """Rounds of play-then-train; round 1 plays the teachers, later ones the student
    (the student's own mistakes on 1-3 were still being corrected in round 4 of 5 of the
    first World 1 distillations)."""
    episodes: int = 30
    """Episodes played per stage and round."""
    epochs: int = 3
    """Passes over all the states gathered so far, per round."""
    batch_size: int = 64
    learning_rate: float = 3e-4
    """Adam's step size; 1e-4 with 3 epochs left the loss falling between rounds
    (underfit: 0.71, 0.45, 0.34), 3e-4 reached 0.27 by round 3."""
    temperature: float = 0.01
    """T of softmax(Q / T) for teacher and student (Rusu et al.'s value)."""
    epsilon: float = 0.05
    """Exploration of the second half of the episodes played for states, which leave the
    player's own path a little; the first half is greedy, so the whole route is covered
    even by a teacher that rarely gets to the end while it explores."""
    eval_episodes: int = 5
    """Greedy episodes per stage after each round (training's evaluation seeds); the
    student kept is the round that did best there (:func:`round_score`). 0 = none, and
    the last round is kept."""
    seed: int = 0
    network: str | None = None
    """The student's torso (``config.NETWORKS``); None = its teachers'. Why another: one
    network holds every stage's policy, and the students of the same size as their
    teachers lost one stage or another between rounds (docs/world-1.md), which a wider
    one may not; the teachers still play round 1 with their own."""
    workers: int = 2
    """Processes that play the episodes for states at once (1: in this process)."""
    average_steps: int = 0
    """With N > 0, the student that plays, is evaluated, kept and written is an exponential
    moving average of the trained weights over about the last N gradient steps (each step
    moves it 1/N of the way to the new weights), carried across rounds; the training itself
    is the same. 0 = off: the trained weights, as before the option existed. Why: the
    student swings between rounds (docs/world-1.md, Finding 1), and such an average of the
    online weights steadied the RL agent's policy (``agent.policy_average_steps``,
    docs/time-to-solve.md). See :func:`mario_dqn.distill.distill`."""
    average_warmup: bool = False
    """Warm the average up: after gradient step n it moves at least 9 / (n + 10) of the way
    to the new weights (TensorFlow's ExponentialMovingAverage ``num_updates`` rule), so
    early on it spans about the last tenth of the steps taken, not N. Why: without it,
    N = 2000 left about a quarter of round 1's average on the first steps' near-random
    weights, and the student after round 1 reached no flag on any stage in both seeds measured
    (docs/world-1.md). False: the plain average (the shipped record's)."""

    def __post_init__(self) -> None:
        if self.average_steps < 0:
            raise DistillError(f"average_steps must be >= 0 (0 = off), not {self.average_steps}")
        if self.network is not None and self.network not in NETWORKS:
            raise DistillError(f"network must be one of {', '.join(NETWORKS)}, not {self.network!r}")
        if self.average_warmup and self.average_steps == 0:
            raise DistillError("average_warmup warms up the weight average: it needs average_steps > 0")


class DistillError(ValueError):
    """Teachers that cannot teach one student (different actions or networks)."""
