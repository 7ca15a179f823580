"""The DQN agent: online and target Q-networks, one compiled learning step, acting.

The agent is deliberately only the learner and the policy. It does not know about
environments, replay memories, epsilon schedules or step counters of the run; the
runner feeds it batches (:class:`mario_dqn.batch.Batch`) and observations. That keeps
``train_step`` a pure function of (weights, optimizer state, batch), which is what
makes it testable against hand-computed numbers and reproducible bit for bit.

Its whole learning state (both networks' weights, Adam's variables, the update count
and the exploration generator) goes out through :meth:`DQNAgent.training_state` and
comes back through :meth:`DQNAgent.restore`, as one
:class:`mario_dqn.training_state.TrainingState`; ``save_model`` writes the policy
network as a ``.keras`` file for people and other programs.

The policy is the network that evaluations and saved models act with: the online
network, or with ``policy_average_steps`` > 0 a moving average of its weights (kept
beside the online and target networks, and saved with them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from config.settings import AgentConfig
from mario_dqn.batch import Batch
from mario_dqn.tf_import import import_tensorflow
from mario_dqn.training_state import StateMismatch, TrainingState

tf = import_tensorflow()  # before Keras, which imports it as its backend (see tf_import)

import keras  # noqa: E402

from mario_dqn.network import build_q_network  # noqa: E402

class DQNAgent:
    """Double/dueling n-step DQN with a periodically synced target network.

    ``network`` lets tests inject a tiny model; otherwise ``config.network``'s torso is
    built by :func:`mario_dqn.network.build_q_network`. The target network is always a
    clone of the online one with copied weights, so both start identical.

    ``jit_compile`` compiles the whole learning step with XLA. It is off by default:
    on CPUs, with TensorFlow's oneDNN kernels (turned on by :mod:`mario_dqn.tf_import`),
    the per-op step measured faster than the XLA one, because XLA's CPU convolutions lose
    to oneDNN's (``benchmarks/agent_bench.py`` times both; README has the figures). It
    may pay on a GPU. The optimizer step alone is always XLA-compiled (see ``_apply_fn``),
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
        """Exploration randomness; its state is part of :meth:`training_state`."""
        self.updates = 0
        """Learning steps taken; the target is synced when it reaches a multiple of C."""

        self.online = network if network is not None else build_q_network(
            self.num_actions, self.obs_shape, dueling=config.dueling, seed=seed, name="online",
            torso=config.network)
        self._check_network(self.online)
        self.target = keras.models.clone_model(self.online)
        self.target.set_weights(self.online.get_weights())
        self.target.trainable = False
        self.average: keras.Model | None = None
        """The moving average of the online weights (``config.policy_average_steps`` > 0),
        which is then the policy; None when the online network is the policy."""
        if config.policy_average_steps > 0:
            self.average = keras.models.clone_model(self.online)
            self.average.set_weights(self.online.get_weights())
            self.average.trainable = False

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
        self._target_fn = tf.function(self._td_target_graph, input_signature=batch_spec[:5],
                                      autograph=False)
        # Acting is XLA-compiled: for the small batches it runs on (one row per env) the
        # per-op dispatch costs more than the convolutions, and the fused forward pass
        # saves most of it (README's Performance section has the figures).
        # XLA compiles once per batch size seen (one for training's N envs, one for
        # evaluation's 1). act takes the argmax of this same function's output, so its
        # greedy choice is by construction the argmax of what q_values returns.
        self._q_fn = tf.function(self._q_graph, input_signature=(obs_spec,), jit_compile=True, autograph=False)
        self._policy_q_fn = self._q_fn if self.average is None else tf.function(
            self._policy_q_graph, input_signature=(obs_spec,), jit_compile=True, autograph=False)
        self._sync_fn = tf.function(self._sync_graph, autograph=False)
        # Keras 3's Adam updates each variable with a chain of separate elementwise ops,
        # each a pass over all the weights; XLA fuses them into one pass. Only this part
        # is compiled: XLA's CPU convolutions are slower than the oneDNN ones the rest of
        # the step uses.
        self._apply_fn = tf.function(self._apply_graph, jit_compile=True, autograph=False)
        # One fused pass over the weights, like Adam's (it runs after every update).
        self._average_fn = tf.function(self._average_graph, jit_compile=True, autograph=False)

    def _check_network(self, model: keras.Model) -> None:
        """Fail at construction, not deep inside a trace, when an injected net does not fit."""
        probe = np.zeros((1, *self.obs_shape), np.uint8)
        shape = tuple(model(probe).shape)
        if shape != (1, self.num_actions):
            raise ValueError(f"network maps {self.obs_shape} to {shape[1:]}, expected ({self.num_actions},)")

    # ------------------------------------------------------------------ graphs

    def _td_target_graph(self, obs: tf.Tensor, action: tf.Tensor, reward: tf.Tensor, next_obs: tf.Tensor,
                         discount: tf.Tensor) -> tf.Tensor:
        """y = reward + discount * V(s'), the one place the target is computed.

        V(s') = Q_target(s', a*): Double DQN picks a* with the online net and evaluates it
        with the target net, which curbs the max operator's upward bias; vanilla DQN takes
        max_a Q_target. With ``target_epsilon`` e > 0, V(s') is the value of acting
        e-greedily from s', (1 - e) Q_target(s', a*) + e mean_a Q_target(s', a), so that the
        greedy policy can prefer routes that survive random presses (measured once on 1-4
        without a gain: docs/every-stage.md).
        A terminated window arrives with discount 0, so its bootstrap term vanishes.
        ``obs`` and ``action`` are unused: the signature is the batch's, which the
        compiled step shares.
        """
        cfg = self.config
        next_q_target = self.target(next_obs, training=False)
        if cfg.double:
            next_action = tf.argmax(self.online(next_obs, training=False), axis=1, output_type=tf.int32)
            next_value = tf.gather(next_q_target, next_action, axis=1, batch_dims=1)
        else:
            next_value = tf.reduce_max(next_q_target, axis=1)
        if cfg.target_epsilon > 0.0:  # a Python branch: the default's graph is unchanged
            next_value = ((1.0 - cfg.target_epsilon) * next_value
                          + cfg.target_epsilon * tf.reduce_mean(next_q_target, axis=1))
        return tf.stop_gradient(reward + discount * next_value)

    def _train_graph(self, obs: tf.Tensor, action: tf.Tensor, reward: tf.Tensor, next_obs: tf.Tensor,
                     discount: tf.Tensor, weight: tf.Tensor) -> dict[str, tf.Tensor]:
        """One Adam step on the importance-weighted Huber loss of the TD errors (plus, with
        ``anchor_weight``, :meth:`_anchor_loss`)."""
        target = self._td_target_graph(obs, action, reward, next_obs, discount)
        variables = self.online.trainable_variables
        with tf.GradientTape() as tape:
            q = self.online(obs, training=True)
            q_taken = tf.gather(q, action, axis=1, batch_dims=1)
            per_sample = keras.losses.huber(target[:, None], q_taken[:, None], delta=self.config.huber_delta)
            loss = tf.reduce_mean(weight * per_sample)
            if self.config.anchor_weight > 0.0:  # a Python branch: the default's graph is unchanged
                loss = loss + self.config.anchor_weight * self._anchor_loss(obs, q)
        gradients = tape.gradient(loss, variables)
        grad_norm = tf.linalg.global_norm(gradients)  # before clipping; Adam clips (global_clipnorm)
        self._apply_fn(gradients)
        return {"loss": loss, "mean_q": tf.reduce_mean(q_taken), "td_errors": target - q_taken,
                "grad_norm": grad_norm}

    def _anchor_loss(self, obs: tf.Tensor, q: tf.Tensor) -> tf.Tensor:
        """DQfD's large-margin loss towards the weight average's greedy action a_avg:
        mean over the batch of max_a [Q(s, a) + m (a != a_avg)] - Q(s, a_avg), which is 0
        where a_avg leads every other action by at least m. It ranks actions only (adding
        a constant to a row of Q leaves it unchanged), so the TD loss sets the values."""
        anchored = tf.argmax(self.average(obs, training=False), axis=1, output_type=tf.int32)
        margins = self.config.anchor_margin * (1.0 - tf.one_hot(anchored, self.num_actions, dtype=q.dtype))
        return tf.reduce_mean(tf.reduce_max(q + margins, axis=1) - tf.gather(q, anchored, axis=1, batch_dims=1))

    def _apply_graph(self, gradients: list[tf.Tensor]) -> None:
        self.optimizer.apply_gradients(zip(gradients, self.online.trainable_variables))

    def _q_graph(self, obs: tf.Tensor) -> tf.Tensor:
        return self.online(obs, training=False)

    def _policy_q_graph(self, obs: tf.Tensor) -> tf.Tensor:
        return self.policy(obs, training=False)

    def _average_graph(self) -> None:
        """average <- average + rate * (online - average), rate = train_freq / policy_average_steps:
        an exponential moving average over ~policy_average_steps agent steps. A horizon
        shorter than one update's train_freq steps makes the rate 1, an exact copy."""
        rate = self.config.train_freq / self.config.policy_average_steps
        for average_var, online_var in zip(self.average.weights, self.online.weights):
            if rate >= 1.0:
                average_var.assign(online_var)
            else:
                average_var.assign(average_var + rate * (online_var - average_var))

    def _sync_graph(self) -> None:
        """target <- tau * online + (1 - tau) * target; tau == 1 is an exact copy."""
        tau = self.config.target_tau
        for target_var, online_var in zip(self.target.weights, self.online.weights):
            if tau >= 1.0:
                target_var.assign(online_var)
            else:
                target_var.assign(tau * online_var + (1.0 - tau) * target_var)

    # ---------------------------------------------------------------- learning

    def train_step(self, batch: Batch) -> dict[str, Any]:
        """One learning step on a replay batch, then the periodic target sync and, when
        the agent keeps a weight average, the average's step towards the new weights.

        Returns ``loss`` and ``mean_q`` (mean Q(s, a) of the batch, before the update)
        and ``grad_norm`` (global gradient norm before clipping) as floats, and
        ``td_errors`` = y - Q(s, a) per sample as a numpy (B,) array, from which a
        prioritized memory takes its new priorities.
        """
        if self.config.learning_rate_decay_steps > 0:
            self.optimizer.learning_rate.assign(self.learning_rate_at(self.updates))
        out = self._train_fn(batch.obs, batch.action, batch.reward, batch.next_obs, batch.discount, batch.weight)
        self.updates += 1
        if self.updates % self.config.target_update_period == 0:
            self.sync_target()
        if self.average is not None:
            self._average_fn()
        return {"loss": float(out["loss"]), "mean_q": float(out["mean_q"]),
                "grad_norm": float(out["grad_norm"]), "td_errors": out["td_errors"].numpy()}

    def learning_rate_at(self, updates: int) -> float:
        """The learning rate of the update after ``updates`` updates: ``learning_rate``
        falling linearly to ``learning_rate_end`` over ``learning_rate_decay_steps`` agent
        steps, i.e. that many / ``train_freq`` updates, then flat (constant when the decay
        is 0). A late, lower rate is meant to damp the policy's swings between checkpoints.

        It is set into Adam's own ``learning_rate`` variable before each update, so the
        optimizer's variables (and checkpoints) look the same with or without a decay, and
        a resumed run, which restores ``updates``, continues on the same rate.
        """
        cfg = self.config
        if cfg.learning_rate_decay_steps <= 0:
            return cfg.learning_rate
        fraction = min(updates * cfg.train_freq / cfg.learning_rate_decay_steps, 1.0)
        return cfg.learning_rate + (cfg.learning_rate_end - cfg.learning_rate) * fraction

    def td_target(self, batch: Batch) -> np.ndarray:
        """The TD targets y (B,) of a batch, by the same graph code ``train_step`` uses."""
        return self._target_fn(batch.obs, batch.action, batch.reward, batch.next_obs, batch.discount).numpy()

    def sync_target(self) -> None:
        """Move the target network to the online one (hard copy, or Polyak with tau < 1)."""
        self._sync_fn()

    # ------------------------------------------------------------------ acting

    @property
    def policy(self) -> keras.Model:
        """The network evaluations and saved models act with: the weight average when
        the agent keeps one, else the online network."""
        return self.online if self.average is None else self.average

    def q_values(self, obs: np.ndarray, *, policy: bool = False) -> np.ndarray:
        """Q-values (N, A) of a batch of uint8 observations (N, H, W, S): the online
        network's, or with ``policy`` the policy network's."""
        q_fn = self._policy_q_fn if policy else self._q_fn
        return q_fn(np.asarray(obs, np.uint8)).numpy()

    def act(self, obs: np.ndarray, epsilon: float | np.ndarray, rng: np.random.Generator | None = None, *,
            policy: bool = False) -> np.ndarray:
        """Epsilon-greedy actions (N,) int64 for a batch of observations, one per env;
        ``epsilon`` is one rate for all or one per observation.

        Both random draws are made for every call whatever epsilon is, so the
        generator advances identically and a resumed run stays in step with an
        uninterrupted one. The network is skipped when every action is random.
        ``rng`` replaces the agent's own generator for this call: evaluation explores
        with its own, so evaluating never moves training's random stream. Training
        acts with the online network; evaluation passes ``policy`` to act with
        :attr:`policy` (the same network unless the agent keeps a weight average).
        """
        obs = np.asarray(obs, np.uint8)
        count = obs.shape[0]
        rng = self.rng if rng is None else rng
        explore = rng.random(count) < epsilon
        random_actions = rng.integers(self.num_actions, size=count, dtype=np.int64)
        if explore.all():
            return random_actions
        q_fn = self._policy_q_fn if policy else self._q_fn
        greedy = q_fn(obs).numpy().argmax(axis=1)  # first maximum on ties, like tf.argmax
        return np.where(explore, random_actions, greedy)

    # ------------------------------------------------------------------- state

    def training_state(self) -> TrainingState:
        """A copy of everything learning depends on, and the policy's weight average
        (see :class:`TrainingState`)."""
        return TrainingState(
            online=self.online.get_weights(),
            target=self.target.get_weights(),
            optimizer=[np.asarray(v) for v in self.optimizer.variables],
            counters={"updates": self.updates, "rng": self.rng.bit_generator.state},
            average=[] if self.average is None else self.average.get_weights(),
        )

    def restore(self, state: TrainingState) -> None:
        """Continue from ``state``; :class:`StateMismatch` naming the first part whose
        shapes do not fit this agent's networks, raised before anything is changed (a
        weight average, too, must be there exactly when this agent keeps one)."""
        mine = {"online": self.online.weights, "target": self.target.weights,
                "optimizer": self.optimizer.variables,
                "average": [] if self.average is None else self.average.weights}
        for part in TrainingState.PARTS:
            _check_shapes(part, getattr(state, part), mine[part])
        self.online.set_weights(state.online)
        self.target.set_weights(state.target)
        if self.average is not None:
            self.average.set_weights(state.average)
        for variable, value in zip(self.optimizer.variables, state.optimizer):
            variable.assign(value)
        self.updates = int(state.counters["updates"])
        self.rng.bit_generator.state = state.counters["rng"]
        # Checkpoints of 2026-11-28 to issue 37 also hold "augment_rng", the generator of the
        # retired DrQ shift; it drew nothing at the only augment_shift they load with (0).

    def load_policy(self, online: list[np.ndarray]) -> None:
        """Act with ``online`` weights (every network of the agent gets them); for playing
        and evaluating, where there is no optimizer state to restore. :class:`StateMismatch`
        before anything changes when their shapes do not fit this agent's network."""
        _check_shapes("online", online, self.online.weights)
        for network in (self.online, self.target, self.average):
            if network is not None:
                network.set_weights(online)

    def load_weights_file(self, path: Any) -> None:
        """Act with the weights of a ``.weights.h5`` file that :meth:`save_weights` wrote
        (a kept model), every network alike, like :meth:`load_policy`."""
        self.online.load_weights(path)
        self.load_policy(self.online.get_weights())

    def save_model(self, path: Any) -> None:
        """The policy network as a ``.keras`` file (uint8 stacks in, Q-values out)."""
        self.policy.save(path)

    def save_weights(self, path: Any) -> None:
        """Only the policy network's weights (a ``.weights.h5`` file): what a kept model
        needs to be evaluated, with no optimizer or target copies."""
        self.policy.save_weights(path)


def _check_shapes(part: str, got: list[np.ndarray], want: list[Any]) -> None:
    """:class:`StateMismatch` naming ``part`` unless ``got`` has the shapes of ``want``."""
    if len(got) != len(want) or any(tuple(g.shape) != tuple(w.shape) for g, w in zip(got, want)):
        raise StateMismatch(part)
