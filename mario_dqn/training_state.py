"""The agent's whole learning state as plain data (Acme's ``TrainingState`` is the model).

The agent hands it over (:meth:`DQNAgent.training_state`) and takes it back
(:meth:`DQNAgent.restore`); the checkpoint writer stores its parts without knowing any
attribute of the agent. It lives apart from the agent so that reading a checkpoint
needs neither TensorFlow nor a built Keras model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass
class TrainingState:
    """Everything a learning step depends on, and the policy's weight average, so that
    restoring it continues bit for bit."""

    online: list[np.ndarray]
    """Online network weights, in ``model.get_weights()`` order."""
    target: list[np.ndarray]
    """Target network weights, same order."""
    optimizer: list[np.ndarray]
    """Adam's variables (iteration count, then the moments), in ``optimizer.variables`` order."""
    counters: dict[str, Any]
    """JSON-ready: the update count and the exploration generator's state."""
    average: list[np.ndarray] = field(default_factory=list)
    """The moving average of the online weights (``agent.policy_average_steps``), same
    order; empty when the agent keeps none."""

    PARTS: ClassVar[tuple[str, ...]] = ("online", "target", "optimizer", "average")
    """The array parts, each stored as one file by the checkpoint (``average`` only when
    it is not empty)."""


class StateMismatch(ValueError):
    """A :class:`TrainingState` whose ``part`` has other shapes than the agent's networks
    (a checkpoint of another network, action set or frame size)."""

    def __init__(self, part: str) -> None:
        super().__init__(f"{part} does not match the network built from the config")
        self.part = part
