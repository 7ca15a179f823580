"""The Q-network: a DQN convolutional torso with a linear or dueling head, uint8 in.

Two torsos (``AgentConfig.network``): the Nature-DQN one of Mnih et al. (2015), and
the smaller one of their 2013 paper (IMPALA's "shallow" network), a third of the
arithmetic per sample. On a CPU the learning step is most of the cost of training,
so the torso sets how many agent steps an hour buys.

The model takes raw ``uint8`` frame stacks and scales them inside the graph, so the
replay memory and the acting path never materialise float copies of observations
(an 84x84x4 stack is 28 KB as uint8 and 113 KB as float32), and a saved ``.keras``
file is self-contained: whoever loads it feeds it the same uint8 stacks the
environment produces, with no preprocessing to remember.

Every layer is a stock Keras layer, the dueling head's combination included (see
:func:`dueling_q`), so ``keras.saving.load_model`` reads a saved model in any Python
that has Keras, without this package. Models saved before that used the custom
:class:`DuelingCombine`, kept registered so that those files still load here.
"""

from __future__ import annotations

import numpy as np

from mario_dqn.tf_import import import_tensorflow

import_tensorflow()  # Keras 3 imports TensorFlow as its backend: quietly, first (see tf_import)

import keras  # noqa: E402
from keras import layers  # noqa: E402

TORSOS: dict[str, tuple[tuple[tuple[int, int, int], ...], int]] = {
    "nature": (((32, 8, 4), (64, 4, 2), (64, 3, 1)), 512),  # Mnih et al. (2015)
    "small": (((16, 8, 4), (32, 4, 2)), 256),  # Mnih et al. (2013)
    "wide": (((32, 8, 4), (64, 4, 2), (64, 3, 1)), 1024),  # Nature's convolutions, twice its hidden units
}
"""Each torso's convolutions as (filters, kernel, stride), valid padding, and its hidden
units; the names are ``config.NETWORKS``. ``wide`` is for a student distilled from several
teachers (``distill --network wide``): twice the units where the stages' policies are held
apart, at 1.2x the arithmetic of ``nature`` (its hidden matrix, 3136 x 1024, is the
largest)."""
NATURE_CONVS, NATURE_HIDDEN = TORSOS["nature"]


def min_frame_size(torso: str) -> int:
    """Smallest frame side the torso's valid-padded convolutions leave at least 1x1 of."""
    side = 1
    for _, kernel, stride in reversed(TORSOS[torso][0]):
        side = (side - 1) * stride + kernel
    return side


MIN_FRAME_SIZE: int = min_frame_size("nature")


@keras.saving.register_keras_serializable(package="mario_dqn")
class DuelingCombine(layers.Layer):
    """Q = V + A - mean_a(A), as one custom layer: how models were saved before
    :func:`dueling_q`. Only loading those files needs it; new models do not use it."""

    def call(self, inputs: list[keras.KerasTensor]) -> keras.KerasTensor:
        value, advantage = inputs
        return value + advantage - keras.ops.mean(advantage, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape: list[tuple[int | None, ...]]) -> tuple[int | None, ...]:
        return input_shape[1]


def dueling_q(value: keras.KerasTensor, advantage: keras.KerasTensor, name: str = "q") -> keras.KerasTensor:
    """Q = V + A - mean_a(A) (Wang et al., 2016), from Keras' built-in layers only.

    Subtracting the mean advantage makes V and A identifiable: without it any constant
    could move between the two streams and neither would mean anything. Built from
    stock layers (no Lambda, no custom class) so a saved model needs nothing but Keras
    to load and holds no pickled code. The sum is taken first and the mean subtracted
    after, the same order of float operations as :class:`DuelingCombine`: the Q-values
    are bitwise those of the models saved before (a test checks it).
    """
    actions = advantage.shape[-1]
    # Keras orders a functional model's weights by each layer's depth below the output.
    # The mean gives the advantage stream one layer more than the value stream; an
    # identity on the value stream evens them, so the weights (and Adam's variables)
    # keep the order of the models saved before: value, then advantage.
    value = layers.Identity(name=f"{name}_value")(value)
    total = layers.Add(name=f"{name}_value_plus_advantage")([value, advantage])  # (N, 1) broadcast to (N, A)
    column = layers.Reshape((actions, 1), name=f"{name}_advantage_column")(advantage)
    mean = layers.GlobalAveragePooling1D(name=f"{name}_mean_advantage")(column)  # (N, 1)
    return layers.Subtract(name=name)([total, mean])


def layer_seeds(seed: int, count: int) -> list[int]:
    """``count`` distinct initializer seeds derived from one run seed.

    A SeedSequence hashes (seed, i) so the seeds of neighbouring run seeds are
    unrelated; ``seed + i`` would give layer i of run ``seed`` the initial weights of
    layer i - 1 of run ``seed + 1`` wherever their shapes match.
    """
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count) % (2**31 - 1)]


def build_q_network(
    num_actions: int,
    obs_shape: tuple[int, int, int] = (84, 84, 4),
    dueling: bool = True,
    seed: int = 0,
    name: str = "q_network",
    torso: str = "nature",
) -> keras.Model:
    """The Q-network mapping uint8 stacks (N, H, W, S) to Q-values (N, A).

    Kernels use He-uniform initialisation (the layers are ReLU) with one seed per
    layer, so building twice with the same ``seed`` gives bitwise-identical weights;
    biases start at zero.
    """
    if num_actions < 1:
        raise ValueError(f"num_actions must be >= 1, got {num_actions}")
    if torso not in TORSOS:
        raise ValueError(f"torso must be one of {', '.join(TORSOS)}; got {torso!r}")
    convs, hidden = TORSOS[torso]
    smallest = min_frame_size(torso)
    if min(obs_shape[:2]) < smallest:
        raise ValueError(f"the {torso} torso needs frames of at least {smallest}x{smallest}, "
                         f"got {obs_shape}; inject a smaller network into DQNAgent for tiny inputs")
    seeds = iter(layer_seeds(seed, len(convs) + 3))

    def init() -> keras.initializers.Initializer:
        return keras.initializers.HeUniform(seed=next(seeds))

    obs = keras.Input(shape=tuple(obs_shape), dtype="uint8", name="obs")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(obs)  # casts uint8 -> float32 too
    for i, (filters, kernel, stride) in enumerate(convs):
        x = layers.Conv2D(filters, kernel, strides=stride, activation="relu",
                          kernel_initializer=init(), name=f"conv{i + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(hidden, activation="relu", kernel_initializer=init(), name="hidden")(x)
    if not dueling:
        q = layers.Dense(num_actions, kernel_initializer=init(), name="q")(x)
        return keras.Model(obs, q, name=name)
    # The dueling streams share the torso up to its hidden layer and split into two
    # linear heads; separate hidden streams would double the largest matrix (3136 x
    # 512 in the Nature torso) and with it the cost of an update on a CPU.
    value = layers.Dense(1, kernel_initializer=init(), name="value")(x)
    advantage = layers.Dense(num_actions, kernel_initializer=init(), name="advantage")(x)
    return keras.Model(obs, dueling_q(value, advantage), name=name)
