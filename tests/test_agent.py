"""The DQN agent, network and schedules against hand-computed numbers.

Most tests use a tiny linear Q-network (Q = flatten(obs) @ W [+ b], no scaling) on
2x2x1 observations, so every Q-value, TD target, loss and gradient below is a few
multiplications that can be done by hand. A one-hot observation e_k picks row k of W.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator

import keras
import numpy as np
import pytest
import tensorflow as tf

from config.settings import AgentConfig
from mario_dqn.agent import DQNAgent
from mario_dqn.batch import Batch
from mario_dqn.network import DuelingCombine, build_q_network, min_frame_size
from mario_dqn.schedules import linear_schedule
from mario_dqn.training_state import StateMismatch

TINY_SHAPE = (2, 2, 1)
NUM_ACTIONS = 3
BASE = AgentConfig(gamma=0.9, learning_rate=0.01, adam_epsilon=1e-8, huber_delta=1.0, grad_clip_norm=0.0,
                   target_update_period=1000, target_tau=1.0, double=True, dueling=False, policy_average_steps=0)


def config(**changes: object) -> AgentConfig:
    return dataclasses.replace(BASE, **changes)


def linear_net(kernel: np.ndarray, bias: np.ndarray | None = None) -> keras.Model:
    """Q(obs) = flatten(obs) @ kernel (+ bias), with obs taken as raw pixel values."""
    obs = keras.Input(TINY_SHAPE, dtype="uint8")
    x = keras.layers.Rescaling(1.0)(obs)  # only casts to float32
    x = keras.layers.Flatten()(x)
    q = keras.layers.Dense(kernel.shape[1], use_bias=bias is not None)(x)
    model = keras.Model(obs, q)
    model.set_weights([np.asarray(w, np.float32) for w in (kernel, bias) if w is not None])
    return model


def tiny_agent(kernel: np.ndarray, target_kernel: np.ndarray | None = None, seed: int = 0,
               with_bias: bool = False, jit_compile: bool = False, **changes: object) -> DQNAgent:
    """An agent on the linear net; ``with_bias`` adds a zero bias (a second variable)."""
    bias = np.zeros(kernel.shape[1]) if with_bias else None
    agent = DQNAgent(NUM_ACTIONS, TINY_SHAPE, config(**changes), seed=seed, network=linear_net(kernel, bias),
                     jit_compile=jit_compile)
    if target_kernel is not None:
        agent.target.set_weights([np.asarray(w, np.float32) for w in (target_kernel, bias) if w is not None])
    return agent


def onehot(*rows: int, scale: int = 1) -> np.ndarray:
    """A batch of 2x2x1 uint8 observations, the k-th pixel set to ``scale``."""
    obs = np.zeros((len(rows), 4), np.uint8)
    obs[np.arange(len(rows)), rows] = scale
    return obs.reshape(len(rows), *TINY_SHAPE)


def make_batch(obs: np.ndarray, action: list[int], reward: list[float], next_obs: np.ndarray,
               discount: list[float], weight: list[float] | None = None) -> Batch:
    size = len(action)
    return Batch(
        obs=obs, action=np.asarray(action, np.int32), reward=np.asarray(reward, np.float32),
        next_obs=next_obs, discount=np.asarray(discount, np.float32),
        weight=np.ones(size, np.float32) if weight is None else np.asarray(weight, np.float32),
        index=np.arange(size, dtype=np.int64),
    )


def huber(x: np.ndarray, delta: float) -> np.ndarray:
    return np.where(np.abs(x) <= delta, 0.5 * x**2, delta * (np.abs(x) - 0.5 * delta))


def adam_first_step(grad: np.ndarray, lr: float, eps: float, beta_1: float = 0.9,
                    beta_2: float = 0.999) -> np.ndarray:
    """Keras Adam's first update (iteration 1, zero moments), written out."""
    alpha = lr * np.sqrt(1 - beta_2) / (1 - beta_1)
    m = (1 - beta_1) * grad
    v = (1 - beta_2) * grad**2
    return -alpha * m / (np.sqrt(v) + eps)


# Rows 0 and 1 of these kernels are the next-state Q-values of e0 and e1.
# Online argmax differs from target argmax on both rows, so Double != vanilla.
ONLINE = np.array([[1.0, 3.0, 2.0],   # e0: online picks a=1
                   [0.0, 0.0, 4.0],   # e1: online picks a=2
                   [0.5, -1.0, 2.0],  # e2, e3: states the learner acts in
                   [1.0, 2.0, 0.0]])
TARGET = np.array([[5.0, 2.0, 4.0],   # e0: target max is a=0 (5), target at online's a=1 is 2
                   [1.0, 6.0, 3.0],   # e1: target max is a=1 (6), target at online's a=2 is 3
                   [0.0, 0.0, 0.0],
                   [0.0, 0.0, 0.0]])
# Sample 0: ordinary bootstrap; 1: terminated (discount 0); 2: truncated after 3 steps.
TD_BATCH = make_batch(onehot(2, 3, 2), [0, 1, 2], [1.0, -0.5, 2.0], onehot(0, 1, 1), [0.9, 0.0, 0.9**3])


# --------------------------------------------------------------- TD target


def test_double_dqn_target_selects_with_online_and_evaluates_with_target() -> None:
    agent = tiny_agent(ONLINE, TARGET, double=True)
    expected = [1.0 + 0.9 * 2.0, -0.5, 2.0 + 0.729 * 3.0]
    np.testing.assert_allclose(agent.td_target(TD_BATCH), expected, rtol=1e-6)


def test_vanilla_dqn_target_takes_target_max() -> None:
    agent = tiny_agent(ONLINE, TARGET, double=False)
    expected = [1.0 + 0.9 * 5.0, -0.5, 2.0 + 0.729 * 6.0]
    np.testing.assert_allclose(agent.td_target(TD_BATCH), expected, rtol=1e-6)


@pytest.mark.parametrize("double, greedy_values", [(True, (2.0, 3.0)), (False, (5.0, 6.0))])
def test_epsilon_target_bootstraps_on_the_epsilon_greedy_value(double: bool,
                                                               greedy_values: tuple[float, float]) -> None:
    """V(s') = 0.7 * Q_target(s', a*) + 0.3 * mean_a Q_target(s', a), with a* as the greedy target picks it.

    Next states e0 and e1 have target rows [5, 2, 4] (mean 11/3) and [1, 6, 3] (mean 10/3).
    """
    agent = tiny_agent(ONLINE, TARGET, double=double, target_epsilon=0.3)
    v0 = 0.7 * greedy_values[0] + 0.3 * 11.0 / 3.0
    v1 = 0.7 * greedy_values[1] + 0.3 * 10.0 / 3.0
    expected = [1.0 + 0.9 * v0, -0.5, 2.0 + 0.729 * v1]
    np.testing.assert_allclose(agent.td_target(TD_BATCH), expected, rtol=1e-6)


# The cliff: in A (e0) action 0 is safe (+0.8, the end) and actions 1 and 2 lead to B (e1),
# where only action 0 pays (+1) and the others fall (-10). A perfect player takes the
# detour (0.9 * 1 = 0.9 > 0.8); one who presses at random 30% of the time does not:
# V_0.3(B) = 0.7 * 1 + 0.3 * (1 - 10 - 10) / 3 = -1.2, so Q(A, 1) = Q(A, 2) = 0.9 * -1.2 = -1.08.
CLIFF = make_batch(onehot(0, 0, 0, 1, 1, 1), [0, 1, 2, 0, 1, 2], [0.8, 0.0, 0.0, 1.0, -10.0, -10.0],
                   onehot(0, 1, 1, 0, 0, 0), [0.0, 0.9, 0.9, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("target_epsilon, q_a, best_in_a",
                         [(0.0, [0.8, 0.9, 0.9], (1, 2)), (0.3, [0.8, -1.08, -1.08], (0,))])
def test_epsilon_target_learns_the_route_that_survives_random_presses(target_epsilon: float, q_a: list[float],
                                                                      best_in_a: tuple[int, ...]) -> None:
    """Trained to its fixed point on every transition of the cliff, the greedy target learns the
    risky detour and the epsilon target the safe step: the hand-computed Q-values of A and B."""
    agent = tiny_agent(np.zeros((4, NUM_ACTIONS)), learning_rate=0.05, huber_delta=100.0,
                       target_update_period=20, target_epsilon=target_epsilon)
    for _ in range(1500):
        agent.train_step(CLIFF)
    q = agent.q_values(onehot(0, 1))
    np.testing.assert_allclose(q[1], [1.0, -10.0, -10.0], atol=0.02)
    np.testing.assert_allclose(q[0], q_a, atol=0.02)
    assert int(np.argmax(q[0])) in best_in_a


def test_termination_masks_bootstrap_but_truncation_does_not() -> None:
    agent = tiny_agent(ONLINE, TARGET)
    same_next = make_batch(onehot(2, 2), [0, 0], [0.25, 0.25], onehot(1, 1), [0.0, 0.9**2])
    terminated, truncated = agent.td_target(same_next)
    assert terminated == pytest.approx(0.25)
    assert truncated == pytest.approx(0.25 + 0.81 * 3.0)


def test_fresh_target_is_a_copy_of_online() -> None:
    """A fresh agent's target holds the online weights, so y uses online values throughout."""
    agent = tiny_agent(ONLINE)  # target is a clone with the same weights
    np.testing.assert_allclose(agent.td_target(TD_BATCH), [1.0 + 0.9 * 3.0, -0.5, 2.0 + 0.729 * 4.0],
                               rtol=1e-6)


# --------------------------------------------------------------- loss and gradient


def test_loss_is_weighted_huber_of_td_errors() -> None:
    delta = 1.5
    agent = tiny_agent(ONLINE, TARGET, huber_delta=delta)
    weight = [0.5, 2.0, 1.0]
    batch = TD_BATCH._replace(weight=np.asarray(weight, np.float32))
    y = np.array([2.8, -0.5, 4.187])
    q_taken = np.array([ONLINE[2, 0], ONLINE[3, 1], ONLINE[2, 2]])  # 0.5, 2.0, 2.0
    td = y - q_taken  # 2.3 (linear part), -2.5 (linear part), 2.187 (linear part)
    out = agent.train_step(batch)
    np.testing.assert_allclose(out["td_errors"], td, rtol=1e-5)
    assert out["loss"] == pytest.approx(np.mean(np.asarray(weight) * huber(td, delta)), rel=1e-5)
    assert out["mean_q"] == pytest.approx(q_taken.mean(), rel=1e-6)
    # The quadratic branch too: a small TD error.
    small = make_batch(onehot(2), [0], [0.9], onehot(0), [0.0])
    assert tiny_agent(ONLINE, TARGET, huber_delta=delta).train_step(small)["loss"] == pytest.approx(
        0.5 * 0.4**2, rel=1e-5)


# The weight average's greedy actions differ from the online net's: e2 -> 0, e3 -> 2.
AVERAGE = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [3.0, 1.0, 2.0], [0.0, 1.0, 2.0]])


def test_anchor_loss_is_the_large_margin_towards_the_averages_greedy_action() -> None:
    """With anchor_weight 0.5 and margin 0.8 the loss is the TD loss plus 0.5 times the mean
    over TD_BATCH's states (e2, e3, e2) of max_a [Q(s, a) + 0.8 (a != a_avg)] - Q(s, a_avg):
    e2, online [0.5, -1, 2], a_avg = 0: max(0.5, -0.2, 2.8) - 0.5 = 2.3;
    e3, online [1, 2, 0], a_avg = 2: max(1.8, 2.8, 0) - 0 = 2.8.
    Where the online net already leads with a_avg by the margin the term is 0."""
    from config import ConfigError, Config, apply_overrides

    anchored = tiny_agent(ONLINE, TARGET, policy_average_steps=1000, anchor_weight=0.5, anchor_margin=0.8)
    anchored.average.set_weights([AVERAGE.astype(np.float32)])
    plain = tiny_agent(ONLINE, TARGET, policy_average_steps=1000)
    td_loss = plain.train_step(TD_BATCH)["loss"]
    assert anchored.train_step(TD_BATCH)["loss"] == pytest.approx(td_loss + 0.5 * np.mean([2.3, 2.8, 2.3]), rel=1e-5)
    agreeing = tiny_agent(ONLINE, TARGET, policy_average_steps=1000, anchor_weight=0.5, anchor_margin=0.8)
    # the average is the online net: e2 leads with 2 by 1.5, e3 with 1 by 1.0, both >= 0.8
    assert agreeing.train_step(TD_BATCH)["loss"] == pytest.approx(td_loss, rel=1e-6)
    with pytest.raises(ConfigError, match="needs agent.policy_average_steps > 0"):
        apply_overrides(Config(), ["agent.anchor_weight=1", "agent.policy_average_steps=0"])


def expected_steps(batch: Batch, y: np.ndarray, lr: float, eps: float,
                   clip: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Adam's first (kernel, bias) steps for L = mean(w * huber(y - x.W[:, a] - b[a])).

    The gradients are written out by hand (huber' with delta 1 is the TD error clipped
    to [-1, 1]) and clipped by their global norm over both variables.
    """
    x = batch.obs.reshape(len(y), -1).astype(np.float64)
    q_taken = (x @ ONLINE)[np.arange(len(y)), batch.action]
    dloss_dq = -batch.weight * np.clip(y - q_taken, -1.0, 1.0) / len(y)
    grad_kernel, grad_bias = np.zeros_like(ONLINE), np.zeros(ONLINE.shape[1])
    for i, a in enumerate(batch.action):
        grad_kernel[:, a] += dloss_dq[i] * x[i]
        grad_bias[a] += dloss_dq[i]
    norm = np.sqrt(np.sum(grad_kernel**2) + np.sum(grad_bias**2))
    scale = clip / norm if 0 < clip < norm else 1.0
    return adam_first_step(grad_kernel * scale, lr, eps), adam_first_step(grad_bias * scale, lr, eps)


@pytest.mark.parametrize("weight", [[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.25, 3.0, 0.0]])
def test_importance_weights_scale_each_sample_gradient(weight: list[float]) -> None:
    # A large Adam epsilon makes the first step nearly proportional to the gradient,
    # so a weight that is wrong by any factor shows up in the update. A large learning
    # rate keeps the step well above float32 resolution of the weights it moves.
    lr, eps = 1.0, 1.0
    agent = tiny_agent(ONLINE, TARGET, with_bias=True, learning_rate=lr, adam_epsilon=eps)
    batch = TD_BATCH._replace(weight=np.asarray(weight, np.float32))
    before = agent.online.get_weights()
    agent.train_step(batch)
    steps = [after - old for after, old in zip(agent.online.get_weights(), before)]
    expected = expected_steps(batch, np.array([2.8, -0.5, 4.187]), lr, eps)
    for step, want in zip(steps, expected, strict=True):
        np.testing.assert_allclose(step, want, rtol=1e-4, atol=1e-10)
    if weight[1] == 0.0:  # sample 1 is the only one taking action 1: its column must not move
        assert np.all(steps[0][:, 1] == 0.0) and steps[1][1] == 0.0


def test_gradient_clipping_bounds_the_update() -> None:
    """The clip acts on the global norm over all variables (kernel and bias together)."""
    lr, eps, clip = 1.0, 1.0, 0.05
    y = np.array([2.8, -0.5, 4.187])
    norms = {}
    for clip_norm in (0.0, clip):
        agent = tiny_agent(ONLINE, TARGET, with_bias=True, learning_rate=lr, adam_epsilon=eps,
                           grad_clip_norm=clip_norm)
        before = agent.online.get_weights()
        out = agent.train_step(TD_BATCH)
        steps = [after - old for after, old in zip(agent.online.get_weights(), before)]
        for step, want in zip(steps, expected_steps(TD_BATCH, y, lr, eps, clip_norm), strict=True):
            # atol: a float32 weight near 2 resolves steps only to ~2.4e-7
            np.testing.assert_allclose(step, want, rtol=1e-4, atol=5e-7)
        assert out["grad_norm"] > clip  # the raw gradient is large enough for the clip to act
        norms[clip_norm] = np.sqrt(sum(np.sum(step**2) for step in steps))
    # With eps = 1 Adam's first step is at most 0.0316 * lr * |g| per entry.
    assert norms[clip] <= lr * clip
    assert norms[0.0] > 2 * norms[clip]


def test_td_errors_of_train_step_match_td_target() -> None:
    agent = tiny_agent(ONLINE, TARGET)
    y = agent.td_target(TD_BATCH)
    q = agent.q_values(TD_BATCH.obs)[np.arange(3), TD_BATCH.action]
    np.testing.assert_allclose(agent.train_step(TD_BATCH)["td_errors"], y - q, rtol=1e-6)


# --------------------------------------------------------------- target network


def test_target_sync_happens_exactly_every_period() -> None:
    agent = tiny_agent(ONLINE, TARGET, target_update_period=3)
    synced = []
    for _ in range(7):
        agent.train_step(TD_BATCH)
        synced.append(np.array_equal(agent.target.get_weights()[0], agent.online.get_weights()[0]))
    assert synced == [False, False, True, False, False, True, False]
    assert agent.updates == 7


def test_polyak_sync_mixes_online_into_target() -> None:
    tau = 0.25
    agent = tiny_agent(ONLINE, TARGET, target_update_period=2, target_tau=tau)
    agent.train_step(TD_BATCH)
    np.testing.assert_array_equal(agent.target.get_weights()[0], TARGET.astype(np.float32))  # no sync yet
    agent.train_step(TD_BATCH)
    online = agent.online.get_weights()[0]
    np.testing.assert_allclose(agent.target.get_weights()[0], tau * online + (1 - tau) * TARGET, rtol=1e-6)


def test_target_starts_as_copy_and_does_not_share_variables() -> None:
    agent = tiny_agent(ONLINE)
    np.testing.assert_array_equal(agent.target.get_weights()[0], agent.online.get_weights()[0])
    agent.train_step(TD_BATCH)
    assert not np.array_equal(agent.target.get_weights()[0], agent.online.get_weights()[0])
    np.testing.assert_array_equal(agent.target.get_weights()[0], ONLINE.astype(np.float32))


def test_policy_average_is_a_moving_average_of_online_weights_and_leaves_learning_alone() -> None:
    """policy_average_steps 8 at train_freq 4: each update moves the average half way
    to the new online weights, a_k = a_(k-1) + 0.5 (w_k - a_(k-1)), from a_0 = the
    initial weights. The online and target nets learn exactly as without an average;
    acting with ``policy`` uses the average, training's acting the online net."""
    averaged = tiny_agent(ONLINE, TARGET, target_update_period=2, policy_average_steps=8, train_freq=4)
    plain = tiny_agent(ONLINE, TARGET, target_update_period=2, train_freq=4)
    assert plain.average is None and plain.policy is plain.online
    expected = ONLINE.astype(np.float32)
    for _ in range(3):
        out_a, out_p = averaged.train_step(TD_BATCH), plain.train_step(TD_BATCH)
        assert out_a["loss"] == out_p["loss"]
        online = averaged.online.get_weights()[0]
        expected = expected + 0.5 * (online - expected)
        np.testing.assert_allclose(averaged.average.get_weights()[0], expected, rtol=1e-6)
        assert_same_weights(averaged.online, plain.online)
        assert_same_weights(averaged.target, plain.target)
    assert not np.allclose(expected, online), "the average lags the online weights"
    obs = onehot(0, 1, 2, 3)
    np.testing.assert_allclose(averaged.q_values(obs, policy=True), expected, rtol=1e-6)
    np.testing.assert_array_equal(averaged.q_values(obs), online)
    np.testing.assert_array_equal(averaged.act(obs, 0.0, policy=True), expected.argmax(axis=1))
    np.testing.assert_array_equal(averaged.act(obs, 0.0), online.argmax(axis=1))

    capped = tiny_agent(ONLINE, TARGET, policy_average_steps=1, train_freq=4)  # rate 4: capped at 1
    capped.train_step(TD_BATCH)
    assert_same_weights(capped.average, capped.online)


def test_policy_average_round_trips_and_must_match_the_agent() -> None:
    """The average is part of the training state: a restored agent continues it bit for
    bit. A state must carry one exactly when the agent keeps one."""
    averaged = tiny_agent(ONLINE, TARGET, policy_average_steps=16, train_freq=4)
    averaged.train_step(TD_BATCH)
    state = averaged.training_state()
    assert len(state.average) == 1 and not np.array_equal(state.average[0], state.online[0])
    resumed = tiny_agent(ONLINE * 0, policy_average_steps=16, train_freq=4)
    resumed.restore(state)
    assert_same_weights(resumed.average, averaged.average)
    for agent in (averaged, resumed):
        agent.train_step(TD_BATCH)
    assert_same_weights(resumed.average, averaged.average)

    plain_state = tiny_agent(ONLINE, TARGET).training_state()
    assert plain_state.average == []
    for agent, other in ((tiny_agent(ONLINE * 0, policy_average_steps=16), plain_state), (tiny_agent(ONLINE), state)):
        with pytest.raises(StateMismatch) as err:
            agent.restore(other)
        assert err.value.part == "average"


def test_saved_models_and_load_policy_are_the_policy(tmp_path) -> None:
    """save_model/save_weights write the average when there is one; load_policy and
    load_weights_file give every network the weights they are handed."""
    averaged = tiny_agent(ONLINE, TARGET, policy_average_steps=16, train_freq=4)
    averaged.train_step(TD_BATCH)
    averaged.save_weights(tmp_path / "policy.weights.h5")
    other = tiny_agent(ONLINE * 0, policy_average_steps=16, train_freq=4)
    other.load_weights_file(tmp_path / "policy.weights.h5")
    for network in (other.online, other.target, other.average):
        assert_same_weights(network, averaged.average)
    averaged.save_model(tmp_path / "policy.keras")
    saved = keras.saving.load_model(tmp_path / "policy.keras", compile=False)
    np.testing.assert_array_equal(saved.get_weights()[0], averaged.average.get_weights()[0])


# --------------------------------------------------------------- acting


def test_epsilon_zero_is_greedy() -> None:
    agent = tiny_agent(ONLINE)
    # argmax rows: e0 -> 1, e1 -> 2, e2 -> 2, e3 -> 1
    np.testing.assert_array_equal(agent.act(onehot(0, 1, 2, 3), 0.0), [1, 2, 2, 1])
    np.testing.assert_allclose(agent.q_values(onehot(0, 3, scale=2)), 2 * ONLINE[[0, 3]], rtol=1e-6)


def test_epsilon_one_is_uniform_and_reproducible() -> None:
    obs = onehot(*([0] * 3000))
    actions = tiny_agent(ONLINE, seed=7).act(obs, 1.0)
    assert actions.dtype == np.int64 and actions.shape == (3000,)
    frequencies = np.bincount(actions, minlength=NUM_ACTIONS) / len(actions)
    np.testing.assert_allclose(frequencies, 1 / 3, atol=0.04)
    np.testing.assert_array_equal(tiny_agent(ONLINE, seed=7).act(obs, 1.0), actions)
    assert not np.array_equal(tiny_agent(ONLINE, seed=8).act(obs, 1.0), actions)


def test_epsilon_mixes_greedy_and_random_actions() -> None:
    actions = tiny_agent(ONLINE, seed=3).act(onehot(*([0] * 4000)), 0.3)
    # greedy action 1 with prob 0.7 + 0.3/3; each other action 0.3/3
    frequencies = np.bincount(actions, minlength=NUM_ACTIONS) / len(actions)
    np.testing.assert_allclose(frequencies, [0.1, 0.8, 0.1], atol=0.03)


def test_rng_state_round_trips() -> None:
    agent = tiny_agent(ONLINE, seed=5)
    agent.act(onehot(0, 0), 0.5)
    agent.updates = 42
    state = agent.training_state()
    expected = agent.act(onehot(*([0] * 50)), 0.5)
    other = tiny_agent(ONLINE, seed=99)
    other.restore(state)
    assert other.updates == 42
    np.testing.assert_array_equal(other.act(onehot(*([0] * 50)), 0.5), expected)


def test_acting_with_another_generator_leaves_the_agents_own_alone() -> None:
    agent, twin = tiny_agent(ONLINE, seed=5), tiny_agent(ONLINE, seed=5)
    agent.act(onehot(0, 0), 0.5, rng=np.random.default_rng(1))  # an evaluation's exploration
    np.testing.assert_array_equal(agent.act(onehot(*([0] * 50)), 0.5), twin.act(onehot(*([0] * 50)), 0.5))


def test_restore_refuses_a_state_of_another_shape_and_changes_nothing() -> None:
    agent = tiny_agent(ONLINE, seed=5)
    before = agent.training_state()
    other = tiny_agent(ONLINE, seed=5).training_state()
    other.optimizer = other.optimizer[:-1]
    with pytest.raises(StateMismatch, match="optimizer") as err:
        agent.restore(other)
    assert err.value.part == "optimizer"
    for x, y in zip(agent.training_state().online, before.online, strict=True):
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------- network


def test_dueling_output_is_value_plus_centred_advantage() -> None:
    net = build_q_network(5, (84, 84, 4), dueling=True, seed=1)
    heads = keras.Model(net.input, [net.get_layer("value").output, net.get_layer("advantage").output])
    obs = np.random.default_rng(0).integers(0, 256, (3, 84, 84, 4), dtype=np.uint8)
    value, advantage = (np.asarray(t) for t in heads(obs))
    assert value.shape == (3, 1) and advantage.shape == (3, 5)
    expected = value + advantage - advantage.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(net(obs)), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, advantage)  # the value stream contributes


def test_network_scales_uint8_inside_and_has_nature_torso() -> None:
    net = build_q_network(4, dueling=False)
    assert net.input.dtype == "uint8"
    assert [(layer.filters, layer.kernel_size, layer.strides) for layer in net.layers
            if isinstance(layer, keras.layers.Conv2D)] == [(32, (8, 8), (4, 4)), (64, (4, 4), (2, 2)),
                                                          (64, (3, 3), (1, 1))]
    assert net.get_layer("hidden").units == 512
    assert net.output.shape == (None, 4)


def test_nature_torso_accepts_36_pixels_and_refuses_fewer() -> None:
    assert build_q_network(2, (36, 36, 4)).output.shape == (None, 2)
    with pytest.raises(ValueError, match="at least 36x36"):
        build_q_network(2, (35, 84, 4))


def test_small_torso_is_the_2013_network_with_a_third_of_the_arithmetic() -> None:
    net = build_q_network(5, (84, 84, 4), dueling=True, torso="small")
    convs = [layer for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.strides) for c in convs] == [(16, (8, 8), (4, 4)), (32, (4, 4), (2, 2))]
    assert net.get_layer("hidden").units == 256 and net.output.shape == (None, 5)
    # Multiply-accumulates per sample, by hand: conv1 20*20*16*(8*8*4), conv2 9*9*32*(4*4*16),
    # hidden 2592*256, heads 256*(1+5); the Nature torso's are 9,346,048 (agent_bench).
    small = 20 * 20 * 16 * 256 + 9 * 9 * 32 * 256 + 2592 * 256 + 256 * 6
    assert small == 2_967_040 and 0.3 < small / 9_346_048 < 0.33
    weights = sum(int(np.prod(w.shape)) for w in net.get_weights())
    assert weights == (8 * 8 * 4 * 16 + 16) + (4 * 4 * 16 * 32 + 32) + (2592 * 256 + 256) + (256 + 1) + (256 * 5 + 5)
    # the smallest frame its two valid convolutions take: 4 = (1-1)*2+4, then (4-1)*4+8 = 20
    assert min_frame_size("small") == 20 and min_frame_size("nature") == 36
    assert build_q_network(2, (20, 20, 4), torso="small").output.shape == (None, 2)
    with pytest.raises(ValueError, match="at least 20x20"):
        build_q_network(2, (19, 84, 4), torso="small")
    with pytest.raises(ValueError, match="torso must be one of nature, small"):
        build_q_network(2, torso="tiny")


def test_the_wide_torso_is_nature_s_convolutions_with_twice_the_hidden_units() -> None:
    wide, nature = build_q_network(5, torso="wide"), build_q_network(5, torso="nature")
    assert wide.get_layer("hidden").units == 1024 and wide.output.shape == (None, 5)
    for name in ("conv1", "conv2", "conv3"):
        assert wide.get_layer(name).get_config()["filters"] == nature.get_layer(name).get_config()["filters"]
    # by hand: the hidden matrix 3136 x 1024 and the heads 1024 x (1 + 5) instead of 512's
    extra = (3136 * 1024 + 1024 + 1024 * 6 + 6) - (3136 * 512 + 512 + 512 * 6 + 6)
    assert wide.count_params() - nature.count_params() == extra


def test_same_seed_same_weights_and_layers_get_distinct_seeds() -> None:
    first, again = build_q_network(4, seed=3), build_q_network(4, seed=3)
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    other = build_q_network(4, seed=4)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])
    seeds = [layer.kernel_initializer.seed for layer in first.layers if hasattr(layer, "kernel_initializer")]
    assert len(seeds) == 6 and len(set(seeds)) == 6  # 3 convs, hidden, value, advantage


@pytest.mark.parametrize("dueling", [True, False])
def test_keras_file_round_trip(tmp_path, dueling: bool) -> None:
    net = build_q_network(6, dueling=dueling, seed=2)
    path = tmp_path / "q.keras"
    net.save(path)
    loaded = keras.saving.load_model(path)
    obs = np.random.default_rng(1).integers(0, 256, (4, 84, 84, 4), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(loaded(obs)), np.asarray(net(obs)))
    assert all(type(layer).__module__.startswith("keras.") for layer in loaded.layers), "only stock layers"


def test_dueling_head_of_stock_layers_is_bitwise_the_custom_layer_it_replaced() -> None:
    """Models saved before the stock-layer head (with DuelingCombine) and after it give
    the same Q-values bit for bit: the weights carry over, and so do greedy actions."""
    net = build_q_network(5, dueling=True, seed=1)
    value, advantage = net.get_layer("value").output, net.get_layer("advantage").output
    old = keras.Model(net.input, DuelingCombine(name="q")([value, advantage]))
    obs = np.random.default_rng(2).integers(0, 256, (64, 84, 84, 4), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(old(obs)), np.asarray(net(obs)))
    # the same weights in the same order: checkpoints (weights and Adam's variables) of either load into both
    assert [w.path for w in old.weights] == [w.path for w in net.weights]
    assert [w.path.split("/")[0] for w in net.weights][-4:] == ["value", "value", "advantage", "advantage"]


def test_saved_model_loads_with_keras_alone(tmp_path) -> None:
    """A fresh Python where this project cannot be imported reads the .keras file and
    computes bitwise the Q-values this project computes with the same model. The venv has
    the project installed, so the child blocks its modules (a None in sys.modules makes
    every import of them fail, Keras' own lookups of custom classes included)."""
    net = build_q_network(5, dueling=True, seed=4)
    net.save(tmp_path / "model.keras")
    obs = np.random.default_rng(3).integers(0, 256, (8, 84, 84, 4), dtype=np.uint8)
    np.save(tmp_path / "obs.npy", obs)
    script = ("import sys\n"
              "sys.modules.update(dict.fromkeys(['mario_dqn', 'config', 'main']))\n"
              "import numpy as np, keras\n"
              "try:\n    import mario_dqn\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit('importable')\n"
              "model = keras.saving.load_model('model.keras')\n"
              "np.save('q.npy', np.asarray(model(np.load('obs.npy'))))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "q.npy"), np.asarray(net(obs)))


# --------------------------------------------------------------- determinism and resume


@pytest.fixture
def op_determinism() -> Iterator[None]:
    """TF op determinism for one test, then back to how it was.

    Determinism is a process-wide switch; restoring it keeps the tests that run after
    these ones (and their timings) independent of test order. TF has no public
    ``disable``; its private one is used when present.
    """
    from tensorflow.python.framework import config as tf_config

    was_enabled = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    yield
    if not was_enabled:
        tf_config.disable_op_determinism()


def random_batch(rng: np.random.Generator, size: int = 8, actions: int = 4) -> Batch:
    return Batch(
        obs=rng.integers(0, 256, (size, 84, 84, 4), dtype=np.uint8),
        action=rng.integers(0, actions, size).astype(np.int32),
        reward=rng.standard_normal(size).astype(np.float32),
        next_obs=rng.integers(0, 256, (size, 84, 84, 4), dtype=np.uint8),
        discount=rng.choice([0.0, 0.99], size).astype(np.float32),
        weight=rng.uniform(0.5, 1.0, size).astype(np.float32),
        index=np.arange(size, dtype=np.int64),
    )


def assert_same_weights(a: keras.Model, b: keras.Model) -> None:
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_same_seed_same_batches_bitwise_identical(op_determinism: None) -> None:
    cfg = AgentConfig(target_update_period=2, learning_rate=1e-3)
    agents = [DQNAgent(4, (84, 84, 4), cfg, seed=11) for _ in range(2)]
    rng = np.random.default_rng(0)
    batches = [random_batch(rng) for _ in range(3)]
    start = agents[0].online.get_weights()
    results = [[agent.train_step(b) for b in batches] for agent in agents]
    assert_same_weights(agents[0].online, agents[1].online)
    assert_same_weights(agents[0].target, agents[1].target)
    for out_a, out_b in zip(*results):
        assert out_a["loss"] == out_b["loss"]
        np.testing.assert_array_equal(out_a["td_errors"], out_b["td_errors"])
    assert not np.array_equal(start[0], agents[0].online.get_weights()[0])  # training did move


def test_xla_step_matches_default_step() -> None:
    """The opt-in XLA path computes the same update (up to float reassociation)."""
    agents = [tiny_agent(ONLINE, TARGET, with_bias=True, jit_compile=jit) for jit in (False, True)]
    outs = [agent.train_step(TD_BATCH) for agent in agents]
    np.testing.assert_allclose(outs[1]["td_errors"], outs[0]["td_errors"], rtol=1e-6)
    assert outs[1]["loss"] == pytest.approx(outs[0]["loss"], rel=1e-6)
    for a, b in zip(agents[0].online.get_weights(), agents[1].online.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    assert not np.allclose(agents[1].online.get_weights()[0], ONLINE)  # it did update


def test_restored_agent_continues_bitwise_like_uninterrupted_one(op_determinism: None) -> None:
    """What a checkpoint must carry: the agent's whole training state."""
    cfg = AgentConfig(target_update_period=3, learning_rate=1e-3)
    rng = np.random.default_rng(1)
    batches = [random_batch(rng) for _ in range(5)]
    straight = DQNAgent(4, (84, 84, 4), cfg, seed=4)
    for batch in batches[:2]:
        straight.train_step(batch)
    saved = straight.training_state()

    resumed = DQNAgent(4, (84, 84, 4), cfg, seed=123)  # different init, overwritten below
    resumed.restore(saved)
    for batch in batches[2:]:
        straight.train_step(batch)
        resumed.train_step(batch)
    assert straight.updates == resumed.updates == 5
    assert_same_weights(straight.online, resumed.online)
    assert_same_weights(straight.target, resumed.target)  # the sync at update 3 happened in both
    for a, b in zip(straight.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_learning_rate_decays_linearly_over_agent_steps_and_resumes_on_it() -> None:
    """learning_rate 0.01 -> 0.001 over 8 agent steps at train_freq 4 = 2 updates: the
    updates run at 0.01, 0.0055, 0.001, 0.001. With a constant gradient (a TD error far
    beyond the Huber threshold) Adam moves a weight by exactly its rate each step, so the
    rates are read off the weight, not just off the variable. A restored agent continues
    on the same rate; without a decay the rate never moves."""
    batch = make_batch(onehot(0), [0], [100.0], onehot(1), [0.0])  # y = 100, Q = 0: |TD| >> delta
    decay = {"learning_rate": 0.01, "learning_rate_end": 0.001, "learning_rate_decay_steps": 8, "train_freq": 4}
    agent = tiny_agent(np.zeros((4, 3)), **decay)
    assert [agent.learning_rate_at(u) for u in range(4)] == pytest.approx([0.01, 0.0055, 0.001, 0.001])
    weights, saved = [0.0], None
    for update in range(4):
        agent.train_step(batch)
        weights.append(float(agent.online.get_weights()[0][0, 0]))
        if update == 0:
            saved = agent.training_state()
    np.testing.assert_allclose(np.diff(weights), [0.01, 0.0055, 0.001, 0.001], rtol=1e-4)
    assert np.count_nonzero(agent.online.get_weights()[0]) == 1, "only the taken action's weight has a gradient"

    resumed = tiny_agent(np.ones((4, 3)), **decay)
    resumed.restore(saved)
    resumed.train_step(batch)
    assert float(resumed.online.get_weights()[0][0, 0]) == pytest.approx(weights[2], rel=1e-6)

    constant = tiny_agent(np.zeros((4, 3)), learning_rate=0.01, train_freq=4)
    for _ in range(3):
        constant.train_step(batch)
    assert float(constant.optimizer.learning_rate) == pytest.approx(0.01)
    assert constant.learning_rate_at(10**9) == 0.01


def test_optimizer_is_built_before_the_first_update() -> None:
    agent = tiny_agent(ONLINE)
    names = [v.path for v in agent.optimizer.variables]
    assert any("momentum" in n for n in names) and any("velocity" in n for n in names)
    assert int(agent.optimizer.iterations.numpy()) == 0


def test_injected_network_must_match_action_count() -> None:
    with pytest.raises(ValueError, match="expected"):
        DQNAgent(5, TINY_SHAPE, BASE, network=linear_net(ONLINE))


# --------------------------------------------------------------- schedules


def test_act_takes_one_epsilon_per_observation() -> None:
    """Epsilon 1 for the first observation and 0 for the second: the first action is the
    random draw, the second the greedy one (made from the same draws as a scalar epsilon)."""
    kernel = np.array([[0, 0, 1], [0, 1, 0], [0, 0, 0], [0, 0, 0]], float)  # greedy: 2 for pixel 0, 1 for pixel 1
    agent = tiny_agent(kernel)
    obs = onehot(0, 1, scale=5)
    draws = np.random.default_rng(7)
    draws.random(2)
    random_actions = draws.integers(NUM_ACTIONS, size=2, dtype=np.int64)
    assert agent.act(obs, 0.0).tolist() == [2, 1]
    actions = agent.act(obs, np.array([1.0, 0.0]), rng=np.random.default_rng(7))
    assert actions.tolist() == [random_actions[0], 1]
    actions = agent.act(obs, np.array([0.0, 1.0]), rng=np.random.default_rng(7))
    assert actions.tolist() == [2, random_actions[1]]


def test_linear_schedule() -> None:
    assert linear_schedule(0, 1.0, 0.05, 100) == 1.0
    assert linear_schedule(50, 1.0, 0.05, 100) == pytest.approx(0.525)
    assert linear_schedule(100, 1.0, 0.05, 100) == pytest.approx(0.05)
    assert linear_schedule(10_000, 1.0, 0.05, 100) == pytest.approx(0.05)
    assert linear_schedule(-5, 1.0, 0.05, 100) == 1.0
    assert linear_schedule(25, 0.4, 1.0, 100) == pytest.approx(0.55)  # PER beta rises
    assert linear_schedule(3, 0.4, 1.0, 0) == 1.0
    with pytest.raises(ValueError):
        linear_schedule(3, 1.0, 0.0, -1)
