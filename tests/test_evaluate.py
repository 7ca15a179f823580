"""The evaluation protocol: fixed seeds pick no-op starts, so greedy episodes differ by seed
but never between two runs with the same seed."""

from __future__ import annotations

import numpy as np
import pytest

import config as C
from mario_dqn.evaluation import NOOP_ACTION, evaluate


class RunRight:
    """A stand-in agent that always runs right and counts how often it was asked."""

    def __init__(self, num_actions: int) -> None:
        self.num_actions = num_actions
        self.calls = 0

    def act(self, obs: np.ndarray, epsilon: float, rng: np.random.Generator | None = None, *,
            policy: bool = False) -> np.ndarray:
        assert policy, "evaluation acts with the policy network"
        self.calls += 1
        return np.ones(len(obs), np.int64)  # 'right' in every action set


def _config() -> C.Config:
    return C.apply_overrides(C.Config(), ["max_episode_steps=60", "action_set=right_only"])


def test_noop_starts_come_from_the_seed_and_count_in_the_episode():
    config = _config()
    agent = RunRight(5)
    result = evaluate(agent, config, episodes=3, seed=7, noop_max=30)
    expected_noops = [int(np.random.default_rng(7 + i).integers(31)) for i in range(3)]
    assert len(set(expected_noops)) > 1, "pick a seed whose episodes get different no-op counts"
    lengths = [row["length"] for row in result["per_episode"]]
    assert all(n < length <= 60 for n, length in zip(expected_noops, lengths))
    # the agent is asked only after the no-ops
    assert agent.calls == sum(length - n for n, length in zip(expected_noops, lengths))
    # and the episodes differ: the same greedy policy meets the game in a different phase
    assert len({(row["length"], row["x_pos"]) for row in result["per_episode"]}) > 1


def test_same_seed_same_result_and_noop_max_zero_is_plain_greedy():
    config = _config()
    first = evaluate(RunRight(5), config, episodes=2, seed=3)
    second = evaluate(RunRight(5), config, episodes=2, seed=3)
    assert first == second
    agent = RunRight(5)
    plain = evaluate(agent, config, episodes=2, seed=3, noop_max=0)
    assert agent.calls == sum(row["length"] for row in plain["per_episode"])
    assert plain["per_episode"][0] == plain["per_episode"][1], "a deterministic emulator repeats itself"
    assert NOOP_ACTION == 0


def test_several_stages_are_reported_each_and_pooled():
    config = C.apply_overrides(C.Config(), ["max_episode_steps=20", "action_set=right_only", "stages=1-1,1-2"])
    result = evaluate(RunRight(5), config, episodes=8, seed=0, noop_max=0)
    rows = result["per_episode"]
    assert sorted(result["per_stage"]) == sorted({row["stage"] for row in rows}) == ["1-1", "1-2"]
    for stage, part in result["per_stage"].items():
        mine = [row for row in rows if row["stage"] == stage]
        assert part["episodes"] == len(mine)
        assert part["mean_x_pos"] == sum(row["x_pos"] for row in mine) / len(mine)
        assert part["flag_rate"] == sum(row["flag"] for row in mine) / len(mine)
    assert sum(part["episodes"] for part in result["per_stage"].values()) == result["episodes"] == 8
    assert result["mean_x_pos"] == sum(row["x_pos"] for row in rows) / 8


def test_each_stage_gets_its_own_episodes_on_the_same_seeds():
    """Training's evaluation of a run over several stages: every stage plays all the episodes
    (seeds seed + i), each as that stage played alone, and the pooled figures weigh stages alike."""
    from mario_dqn.evaluation import evaluate_each_stage

    config = C.apply_overrides(C.Config(), ["max_episode_steps=40", "action_set=right_only", "stages=1-1,1-2"])
    result = evaluate_each_stage(RunRight(5), config, episodes=3, seed=7)
    assert [row["stage"] for row in result["per_episode"]] == ["1-1"] * 3 + ["1-2"] * 3
    for stage in ("1-1", "1-2"):
        alone = evaluate(RunRight(5), C.replace(config, {"env": {"stages": (stage,)}}), episodes=3, seed=7)
        assert result["per_stage"][stage] == {k: alone[k] for k in ("episodes", "mean_return", "mean_x_pos",
                                                                    "flag_rate")}
    means = [result["per_stage"][stage]["mean_x_pos"] for stage in ("1-1", "1-2")]
    assert result["episodes"] == 6 and result["mean_x_pos"] == pytest.approx(sum(means) / 2)


def test_the_typed_result_round_trips_through_the_json_it_is_written_as():
    """``evaluate --json`` and results.json are the typed result's to_json(): the same keys in
    the same order as before, read back into an equal result; the rows read by those keys too."""
    import json
    from pathlib import Path

    from mario_dqn.evaluation import EpisodeRow, Evaluation, evaluation_result

    rows = [EpisodeRow(12.5, 40, 700, False, "1-2"), EpisodeRow(300.0, 318, 3161, True, "1-1"),
            EpisodeRow(20.0, 50, 900, False, "1-1")]
    result = evaluation_result(rows)
    written = json.loads(json.dumps(result.to_json()))
    assert list(written) == ["episodes", "mean_return", "mean_x_pos", "flag_rate", "max_x_pos", "per_stage",
                             "per_episode"]
    assert list(written["per_stage"]) == ["1-1", "1-2"], "stages sorted"
    assert written["per_episode"][1] == {"return": 300.0, "length": 318, "x_pos": 3161, "flag": True, "stage": "1-1"}
    assert written["per_stage"]["1-1"] == {"episodes": 2, "mean_return": 160.0, "mean_x_pos": 2030.5,
                                           "flag_rate": 0.5}
    back = Evaluation.from_json(written)
    assert back == result and back.to_json() == written
    assert result.flag_rate == result["flag_rate"] == pytest.approx(1 / 3) and result.max_x_pos == 3161
    assert result.per_episode[0]["return"] == result.per_episode[0].episode_return == 12.5
    with pytest.raises(KeyError):
        result["no such key"]
    shipped = Path(__file__).resolve().parent.parent / "save" / "pretrained"
    for path in sorted(shipped.glob("*/results.json")):  # what the shipped agents were measured with
        recorded = json.loads(path.read_text())
        assert Evaluation.from_json(recorded).to_json() == recorded, path


def test_evaluation_and_training_draw_no_op_starts_alike():
    """One protocol: evaluation's count for an episode seed is training's draw from that seed's generator."""
    from mario_dqn.episode_start import EVAL_NOOP_MAX, evaluation_noops, noop_count

    for seed in range(20):
        assert evaluation_noops(seed) == int(np.random.default_rng(seed).integers(EVAL_NOOP_MAX + 1))
        assert evaluation_noops(seed, 5) == noop_count(np.random.default_rng(seed), 5) <= 5
    assert len({evaluation_noops(seed) for seed in range(20)}) > 5
