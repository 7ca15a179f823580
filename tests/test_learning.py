"""End to end: the real agent and replay memory learn the pixel corridor.

The loop is written out here (CleanRL style) rather than borrowed from the runner,
so this test checks the learning parts (network, TD target, optimizer, target sync,
replay stacks and n-step returns) and nothing else. The corridor's goal is at either
end, shown only in the pixels, so a policy that ignores the picture gets at most half
of the ten start configurations right; the test demands all ten.
"""

from __future__ import annotations

import numpy as np
import pytest

from config.settings import AgentConfig
from mario_dqn.agent import DQNAgent
from mario_dqn.replay import ReplayMemory
from mario_dqn.schedules import linear_schedule
from tests.fakes import all_starts, make_corridor_env, optimal_return

SEED = 0
MAX_STEPS = 3000
EVAL_EVERY = 100
EPSILON_DECAY = 1000
# gamma 0.9 widens the gap between "step toward the goal" and "wait" to ~0.1, so a
# greedy policy is stable after a few hundred updates; n-step 3 carries the goal
# reward back through the corridor quickly.
CONFIG = AgentConfig(gamma=0.9, n_step=3, learning_rate=1e-3, batch_size=32, target_update_period=100,
                     train_freq=2, learning_starts=200, epsilon_start=1.0, epsilon_end=0.05)


def greedy_optimal_count(agent: DQNAgent) -> int:
    """How many of the corridor's start configurations the greedy policy solves optimally."""
    env = make_corridor_env()
    solved = 0
    for start, goal in all_starts():
        obs, _ = env.reset(options={"start": start, "goal": goal})
        episode_return, done = 0.0, False
        while not done:
            action = int(agent.act(obs[None], 0.0)[0])
            obs, reward, terminated, truncated, _ = env.step(action)
            episode_return += reward
            done = terminated or truncated
        solved += bool(np.isclose(episode_return, optimal_return(start, goal)))
    return solved


@pytest.mark.slow
def test_dqn_learns_the_pixel_corridor_optimally() -> None:
    """Double DQN (the defaults' target) learns it."""
    cfg = CONFIG
    env = make_corridor_env()
    agent = DQNAgent(env.action_space.n, env.observation_space.shape, cfg, seed=SEED)
    memory = ReplayMemory(5000, num_envs=1, frame_shape=(84, 84), stack_size=4, n_step=cfg.n_step,
                          gamma=cfg.gamma, seed=SEED)
    configurations = len(all_starts())
    untrained = greedy_optimal_count(agent)
    assert untrained < configurations, "the untrained net already solves the task: the test cannot discriminate"

    solved, obs = 0, env.reset(seed=SEED)[0]
    for step in range(MAX_STEPS):
        epsilon = linear_schedule(step, cfg.epsilon_start, cfg.epsilon_end, EPSILON_DECAY)
        action = agent.act(obs[None], epsilon)
        next_obs, reward, terminated, truncated, _ = env.step(int(action[0]))
        memory.add(obs[None], action, np.array([reward]), next_obs[None], np.array([terminated]),
                   np.array([truncated]))
        obs = env.reset()[0] if terminated or truncated else next_obs
        if step < cfg.learning_starts:
            continue
        if step % cfg.train_freq == 0:
            agent.train_step(memory.sample(cfg.batch_size))
        if step % EVAL_EVERY == 0:
            solved = greedy_optimal_count(agent)
            if solved == configurations:
                break
    assert solved == configurations, \
        f"greedy policy optimal in {solved}/{configurations} starts after {step + 1} steps"
    assert agent.updates > 0
