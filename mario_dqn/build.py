"""An agent from a resolved config, and the seeding every run starts with.

Training, evaluation, play, distillation and the benchmarks all build their agent here,
so a model is always rebuilt with the network and settings it was saved with (the
config travels with every run), and none of them has to import the training loop.
"""

from __future__ import annotations

import config as C
from mario_dqn.agent import DQNAgent


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and Keras, and make TensorFlow's CPU kernels deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_agent(config: C.Config, num_actions: int) -> DQNAgent:
    """The agent ``config`` describes (its network, optimizer and seed), untrained."""
    obs_shape = (config.env.frame_size, config.env.frame_size, config.env.stack_size)
    return DQNAgent(num_actions, obs_shape, config.agent, seed=config.runner.seed)
