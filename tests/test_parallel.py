"""Parallel envs in the real training loop: transitions stay with their env, and the
replay ratio is the configured one whatever the env count.

The replay memory's own stream bookkeeping is tested in test_replay.py against a naive
store; these tests check the wiring around it in :class:`mario_dqn.runner.Trainer`
(env order, auto-reset final observations, when updates happen) on real Mario.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import config as C
from mario_dqn.runner import Trainer

STEPS, LEARNING_STARTS, TRAIN_FREQ = 360, 64, 4


def _config(num_envs: int, prioritized: bool = False) -> C.Config:
    return C.apply_overrides(C.Config(), [
        f"num_envs={num_envs}", f"total_steps={STEPS}", f"learning_starts={LEARNING_STARTS}",
        f"train_freq={TRAIN_FREQ}", "batch_size=8", "capacity=1000", "eval_every=0",
        "checkpoint_every=100000", "save_replay=false", "max_episode_steps=50", "target_update_period=10",
        f"prioritized={str(prioritized).lower()}",
    ])


def _digest(stack: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(stack).tobytes(), digest_size=16).digest()


class Recorder:
    """Wraps a trainer's envs and agent to log what each env produced and when updates ran.

    ``episodes[i]`` is env i's list of episodes, each the ordered digests of the stacks
    it showed: the reset observation, then one per step, the last being the final
    observation (from ``info['final_obs']`` after an auto-reset)."""

    def __init__(self, trainer: Trainer) -> None:
        n = trainer.config.runner.num_envs
        self.trainer = trainer
        self.episodes: list[list[list[bytes]]] = [[[_digest(trainer.obs[i])]] for i in range(n)]
        self.episodes_ended = 0
        self.update_steps: list[int] = []
        step_wait, train_step = trainer.envs.step_wait, trainer.agent.train_step

        def recording_step_wait(*args, **kwargs):
            out = step_wait(*args, **kwargs)
            obs, _, terminated, truncated, info = out
            for i in range(n):
                if terminated[i] or truncated[i]:
                    self.episodes[i][-1].append(_digest(info["final_obs"][i]))
                    self.episodes[i].append([])
                    self.episodes_ended += 1
                self.episodes[i][-1].append(_digest(obs[i]))
            return out

        def recording_train_step(batch):
            self.update_steps.append(trainer.step)
            return train_step(batch)

        trainer.envs.step_wait = recording_step_wait
        trainer.agent.train_step = recording_train_step

    def owners(self, obs: bytes, next_obs: bytes, n_step: int) -> list[int]:
        """Envs that showed ``obs`` and, 1..n_step steps later in the same episode, ``next_obs``."""
        found = []
        for i, episodes in enumerate(self.episodes):
            if any(seq[t] == obs and next_obs in seq[t + 1:t + 1 + n_step]
                   for seq in episodes for t in range(len(seq))):
                found.append(i)
        return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Recorder]:
    out = {}
    for n in (1, 2):
        trainer = Trainer(_config(n, prioritized=n == 2), tmp_path_factory.mktemp(f"envs{n}"),
                          progress=False, log=lambda _: None)
        recorder = Recorder(trainer)
        trainer.run()
        out[n] = recorder
    return out


def test_every_replayed_transition_belongs_to_the_env_it_came_from(runs):
    recorder = runs[2]
    trainer = recorder.trainer
    assert recorder.episodes_ended >= 4, "the run must cross episode ends (auto-resets) in both envs"
    memory = trainer.replay
    checked = 0
    for _ in range(10):
        batch = memory.sample(32)
        for j in range(32):
            obs, next_obs = _digest(batch.obs[j]), _digest(batch.next_obs[j])
            owners = recorder.owners(obs, next_obs, trainer.config.agent.n_step)
            assert owners, "a replayed (obs, next_obs) pair is not one env's stack and its n-step successor"
            checked += 1
    assert checked == 10 * 32


def test_replay_ratio_is_one_update_per_train_freq_steps_summed_over_envs(runs):
    for n, recorder in runs.items():
        steps = recorder.update_steps
        # each update happens once its step is due: update k (0-based) at a step s with (s - L) // F > k
        for k, s in enumerate(steps):
            assert (s - LEARNING_STARTS) // TRAIN_FREQ > k, (n, k, s)
        # and no update is late: after the loop's last learn call (at STEPS - n) all due ones ran
        assert len(steps) == (STEPS - n - LEARNING_STARTS) // TRAIN_FREQ, n
        assert recorder.trainer.agent.updates == len(steps)
    # the same replay ratio for 1 and 2 envs: update counts differ only by the last step's share
    assert abs(len(runs[1].update_steps) - len(runs[2].update_steps)) <= 1


def test_every_env_step_reaches_replay(runs):
    for n, recorder in runs.items():
        assert recorder.trainer.step == STEPS
        assert len(recorder.trainer.replay) == STEPS, "one transition per env per vector step"
