"""The DQN agent: online and target Q-networks, one compiled learning step, acting.

The agent is deliberately only the learner and the policy. It does not know about
environments, replay memories, epsilon schedules or step counters of the run; the
runner feeds it batches (see :data:`BATCH_KEYS`) and observations. That keeps
``train_step`` a pure function of (weights, optimizer state, batch), which is what
makes it testable against hand-computed numbers and reproducible bit for bit.

Checkpoint state, all of it reachable from here:

* ``online`` and ``target``: Keras models (``online.save(...)`` writes a ``.keras``
  file that ``keras.saving.load_model`` reads after ``import mario_dqn.network``;
  target weights via ``target.get_weights()`` / ``set_weights``);
* ``optimizer``: a Keras Adam whose variables exist from construction on, so they can
  be restored before the first update (``optimizer.variables``, or Keras'
  ``save_own_variables(store)`` / ``load_own_variables(store)`` with a dict store);
* :meth:`DQNAgent.get_state` / :meth:`DQNAgent.set_state`: the update counter and the
  exploration generator's state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from config.settings import AgentConfig
from mario_dqn.tf_import import import_tensorflow

tf = import_tensorflow()  # before Keras, which imports it as its backend (see tf_import)

import keras  # noqa: E402

from mario_dqn.network import build_q_network  # noqa: E402

BATCH_KEYS: tuple[str, ...] = ("obs", "action", "reward", "next_obs", "discount", "weight")
"""Batch entries the learning step reads (the replay memory's ``index`` is ignored).

``reward`` is the n-step discounted return already summed, ``next_obs`` the state n
steps later, ``discount`` is gamma**k, or 0 when the episode terminated inside the
window (a truncation keeps gamma**k: the state after a time limit still has a value),
``weight`` the importance-sampling weight (ones for uniform replay).
"""


class DQNAgent:
    """Double/dueling n-step DQN with a periodically synced target network.

    ``network`` lets tests inject a tiny model; otherwise ``config.network``'s torso is
    built by :func:`mario_dqn.network.build_q_network`. The target network is always a
    clone of the online one with copied weights, so both start identical.

    ``jit_compile`` compiles the whole learning step with XLA. It is off by default:
    on the 2-core CPU machines this project runs on, with TensorFlow's oneDNN kernels
    (turned on by :mod:`mario_dqn.tf_import`) the per-op step was 3-13% faster than the
    XLA one in the same runs (XLA's CPU convolutions lose to oneDNN's), and XLA's had
    been up to 3x slower on a busy machine; see ``benchmarks/agent_bench.py``. It may
    pay on a GPU. The optimizer step alone is always XLA-compiled (see ``_apply_fn``),
    and so is acting's forward pass (see ``_q_fn``). Both paths are deterministic.
    """

    def __init__(
        self,
        num_actions: int,
        obs_shape: tuple[int, int, int],
        config: AgentConfig,
        seed: int = 0,
        network: keras.Model | None = None,
        *,
        jit_compile: bool = False,
    ) -> None:
        self.num_actions = int(num_actions)
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.config = config
        self.rng = np.random.default_rng(seed)
        """Exploration randomness; its state is part of :meth:`get_state`."""
        self.updates = 0
        """Learning steps taken; the target is synced when it reaches a multiple of C."""

        self.online = network if network is not None else build_q_network(
            self.num_actions, self.obs_shape, dueling=config.dueling, seed=seed, name="online",
            torso=config.network)
        self._check_network(self.online)
        self.target = keras.models.clone_model(self.online)
        self.target.set_weights(self.online.get_weights())
        self.target.trainable = False

        self.optimizer = keras.optimizers.Adam(
            learning_rate=config.learning_rate,
            epsilon=config.adam_epsilon,
            global_clipnorm=config.grad_clip_norm if config.grad_clip_norm > 0 else None,
        )
        # Built now, not lazily at the first update, so a checkpoint can restore the
        # Adam moments and iteration count into a freshly constructed agent.
        self.optimizer.build(self.online.trainable_variables)

        obs_spec = tf.TensorSpec((None, *self.obs_shape), tf.uint8)
        batch_spec = (
            obs_spec,
            tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec((None,), tf.float32),
            obs_spec,
            tf.TensorSpec((None,), tf.float32),
            tf.TensorSpec((None,), tf.float32),
        )
        # input_signature with a free batch dimension: one trace serves every batch
        # size, and numpy arguments never trigger a retrace.
        self._train_fn = tf.function(self._train_graph, input_signature=batch_spec,
                                     jit_compile=jit_compile, autograph=False)
        self._target_fn = tf.function(self._td_target_graph, input_signature=batch_spec[2:5],
                                      autograph=False)
        # Acting is XLA-compiled: for the small batches it runs on (one row per env) the
        # fused forward pass costs ~0.6x the per-op one (b1 1.7 vs 2.6 ms wall, b2 2.4 vs
        # 2.8 ms), which is where the per-op dispatch dominates the convolutions.
        # XLA compiles once per batch size seen (one for training's N envs, one for
        # evaluation's 1). act takes the argmax of this same function's output, so its
        # greedy choice is by construction the argmax of what q_values returns.
        self._q_fn = tf.function(self._q_graph, input_signature=(obs_spec,), jit_compile=True, autograph=False)
        self._sync_fn = tf.function(self._sync_graph, autograph=False)
        # Keras 3's Adam updates each variable with a chain of separate elementwise ops
        # (~10 ms per update for 1.7M weights on 2 cores); XLA fuses them into one pass
        # (~6 ms). Only this part is compiled: XLA's CPU convolutions are slower than
        # the oneDNN ones the rest of the step uses.
        self._apply_fn = tf.function(self._apply_graph, jit_compile=True, autograph=False)

    def _check_network(self, model: keras.Model) -> None:
        """Fail at construction, not deep inside a trace, when an injected net does not fit."""
        probe = np.zeros((1, *self.obs_shape), np.uint8)
        shape = tuple(model(probe).shape)
        if shape != (1, self.num_actions):
            raise ValueError(f"network maps {self.obs_shape} to {shape[1:]}, expected ({self.num_actions},)")

    # ------------------------------------------------------------------ graphs

    def _td_target_graph(self, reward: tf.Tensor, next_obs: tf.Tensor, discount: tf.Tensor) -> tf.Tensor:
        """y = reward + discount * Q_target(s', a*), the one place the target is computed.

        Double DQN picks a* with the online net and evaluates it with the target net,
        which curbs the max operator's upward bias; vanilla DQN takes max_a Q_target.
        A terminated window arrives with discount 0, so its bootstrap term vanishes.
        """
        next_q_target = self.target(next_obs, training=False)
        if self.config.double:
            next_action = tf.argmax(self.online(next_obs, training=False), axis=1, output_type=tf.int32)
            next_value = tf.gather(next_q_target, next_action, axis=1, batch_dims=1)
        else:
            next_value = tf.reduce_max(next_q_target, axis=1)
        return tf.stop_gradient(reward + discount * next_value)

    def _train_graph(self, obs: tf.Tensor, action: tf.Tensor, reward: tf.Tensor, next_obs: tf.Tensor,
                     discount: tf.Tensor, weight: tf.Tensor) -> dict[str, tf.Tensor]:
        """One Adam step on the importance-weighted Huber loss of the TD errors."""
        target = self._td_target_graph(reward, next_obs, discount)
        variables = self.online.trainable_variables
        with tf.GradientTape() as tape:
            q = self.online(obs, training=True)
            q_taken = tf.gather(q, action, axis=1, batch_dims=1)
            per_sample = keras.losses.huber(target[:, None], q_taken[:, None], delta=self.config.huber_delta)
            loss = tf.reduce_mean(weight * per_sample)
        gradients = tape.gradient(loss, variables)
        grad_norm = tf.linalg.global_norm(gradients)  # before clipping; Adam clips (global_clipnorm)
        self._apply_fn(gradients)
        return {"loss": loss, "mean_q": tf.reduce_mean(q_taken), "td_errors": target - q_taken,
                "grad_norm": grad_norm}

    def _apply_graph(self, gradients: list[tf.Tensor]) -> None:
        self.optimizer.apply_gradients(zip(gradients, self.online.trainable_variables))

    def _q_graph(self, obs: tf.Tensor) -> tf.Tensor:
        return self.online(obs, training=False)

    def _sync_graph(self) -> None:
        """target <- tau * online + (1 - tau) * target; tau == 1 is an exact copy."""
        tau = self.config.target_tau
        for target_var, online_var in zip(self.target.weights, self.online.weights):
            if tau >= 1.0:
                target_var.assign(online_var)
            else:
                target_var.assign(tau * online_var + (1.0 - tau) * target_var)

    # ---------------------------------------------------------------- learning

    def train_step(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """One learning step on a replay batch, then the periodic target sync.

        Returns ``loss`` and ``mean_q`` (mean Q(s, a) of the batch, before the update)
        and ``grad_norm`` (global gradient norm before clipping) as floats, and
        ``td_errors`` = y - Q(s, a) per sample as a numpy (B,) array, from which a
        prioritized memory takes its new priorities.
        """
        out = self._train_fn(*self._batch_args(batch))
        self.updates += 1
        if self.updates % self.config.target_update_period == 0:
            self.sync_target()
        return {"loss": float(out["loss"]), "mean_q": float(out["mean_q"]),
                "grad_norm": float(out["grad_norm"]), "td_errors": out["td_errors"].numpy()}

    def td_target(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """The TD targets y (B,) of a batch, by the same graph code ``train_step`` uses."""
        _, _, reward, next_obs, discount, _ = self._batch_args(batch)
        return self._target_fn(reward, next_obs, discount).numpy()

    def sync_target(self) -> None:
        """Move the target network to the online one (hard copy, or Polyak with tau < 1)."""
        self._sync_fn()

    @staticmethod
    def _batch_args(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        """The batch in train-step argument order, with the dtypes the graph expects."""
        dtypes = (np.uint8, np.int32, np.float32, np.uint8, np.float32, np.float32)
        return tuple(np.asarray(batch[key], dtype=dtype) for key, dtype in zip(BATCH_KEYS, dtypes))

    # ------------------------------------------------------------------ acting

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Online Q-values (N, A) of a batch of uint8 observations (N, H, W, S)."""
        return self._q_fn(np.asarray(obs, np.uint8)).numpy()

    def act(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        """Epsilon-greedy actions (N,) int64 for a batch of observations, one per env.

        Both random draws are made for every call whatever epsilon is, so the
        generator advances identically and a resumed run stays in step with an
        uninterrupted one. The network is skipped when every action is random.
        """
        obs = np.asarray(obs, np.uint8)
        count = obs.shape[0]
        explore = self.rng.random(count) < epsilon
        random_actions = self.rng.integers(self.num_actions, size=count, dtype=np.int64)
        if explore.all():
            return random_actions
        greedy = self._q_fn(obs).numpy().argmax(axis=1)  # first maximum on ties, like tf.argmax
        return np.where(explore, random_actions, greedy)

    # ------------------------------------------------------------------- state

    def get_state(self) -> dict[str, Any]:
        """Counters and exploration RNG state (networks and optimizer are saved apart)."""
        return {"updates": self.updates, "rng": self.rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        self.updates = int(state["updates"])
        self.rng.bit_generator.state = state["rng"]
