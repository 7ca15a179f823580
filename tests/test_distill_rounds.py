"""A stopped distillation continues from its finished rounds (mario_dqn.distill_rounds):
with the emulator faked, a distillation stopped in round 3 and run again gives the same
student and record as one that ran through; rounds of another distillation are refused.
The real command's stop and continue is in tests/test_distill.py. And the rounds' states
are trained on without joining them into one copy (``Stacked``), to the same weights."""

from __future__ import annotations

import numpy as np
import pytest

import config as C
from mario_dqn.distill_rounds import RoundStore, identity
from mario_dqn.distill_settings import DistillError, DistillSettings
from tests.test_distill import _FakeTeacher

EVAL_RATES = {0: 0.5, 1: 1.0, 2: 0.0}
"""The faked greedy evaluation's flag rate after each round (0-based): round 2 is the best,
so the student returned is a kept round's weights, not the last round's."""


def _faked(monkeypatch, stop_in_round: int | None = None):
    """Fake the emulator in mario_dqn.distill: every job's states come from its seed, the
    evaluation's rates from :data:`EVAL_RATES`; ``stop()`` turns true once the episodes of
    round ``stop_in_round`` (0-based) have been played. Returns (teachers, stop)."""
    from mario_dqn import distill as D
    from mario_dqn.environment import ACTIONS

    configs = {stage: C.apply_overrides(C.Config(), [f"stages={stage}", "network=small"]) for stage in ("1-1", "1-2")}
    teacher = _FakeTeacher(len(ACTIONS[configs["1-1"].env.action_set]))
    now = {"round": 0}

    def play_all(jobs, workers, stop=None):
        now["round"] = (jobs[0].seed - D.COLLECT_SEED) // 10_000
        results = []
        for job in jobs:
            obs = np.random.default_rng(job.seed).integers(0, 256, size=(3 * job.episodes, 84, 84, 4), dtype=np.uint8)
            results.append((obs, teacher.q_values(obs), [{"flag": False}] * job.episodes))
        return results

    def evaluate_each_stage(student, config, episodes, seed, stop=None):
        rate = EVAL_RATES[now["round"]]
        return {"per_stage": {stage: {"flag_rate": rate, "mean_x_pos": 100.0 * rate} for stage in config.env.stages}}

    monkeypatch.setattr(D, "play_all", play_all)
    monkeypatch.setattr(D, "evaluate_each_stage", evaluate_each_stage)
    teachers = {stage: (config, teacher) for stage, config in configs.items()}
    return teachers, lambda: stop_in_round is not None and now["round"] >= stop_in_round


SETTINGS = DistillSettings(rounds=3, episodes=2, epochs=2, batch_size=8, eval_episodes=1, workers=1,
                           average_steps=5, average_warmup=True)
"""Three rounds with the warmed-up weight average: Adam's moments, its iteration count and
the average all have to come back for the third round to match."""


def _without_wall(record):
    rounds = [{k: v for k, v in row.items() if k != "wall_s"} for row in record["rounds"]]
    return {**{k: v for k, v in record.items() if k != "wall_s"}, "rounds": rounds}


def test_a_stopped_distillation_continues_to_the_same_student(monkeypatch, tmp_path):
    from mario_dqn import distill as D

    teachers, _ = _faked(monkeypatch)
    through_student, _, through = D.distill(teachers, SETTINGS, log=lambda _: None)

    store = RoundStore(tmp_path / "out.partial", identity({"seed": 0}, {}))
    teachers, stop = _faked(monkeypatch, stop_in_round=2)
    with pytest.raises(D.DistillStopped):
        D.distill(teachers, SETTINGS, log=lambda _: None, stop=stop, store=store)
    assert store.exists() and store.rounds_done() == 2
    assert not (store.directory / "round-003.npz").exists()

    lines: list[str] = []
    teachers, _ = _faked(monkeypatch)
    student, config, resumed = D.distill(teachers, SETTINGS, log=lines.append, store=store)
    assert lines[0] == f"continuing after round 2/3 ({store.directory})"
    assert not any("round 1/3" in line or "round 2/3" in line for line in lines[1:]), "rounds 1-2 are not replayed"
    assert any(line.startswith("round 3/3, 1-1: student played") for line in lines)
    assert _without_wall(resumed) == _without_wall(through)
    assert resumed["kept_round"] == 2 and [row["states"] for row in resumed["rounds"]] == [12, 24, 36]  # 2 stages x 2 episodes x 3 states per round
    for mine, theirs in zip(student.policy.get_weights(), through_student.policy.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    # round 3's training went on from where round 2's left it: its loss matches to the bit
    assert resumed["rounds"][2]["loss"] == through["rounds"][2]["loss"]
    assert config.env.stages == ("1-1", "1-2")


def test_a_distillation_that_starts_afresh_clears_what_a_stop_left(monkeypatch, tmp_path):
    """A store without a finished round (a stop in round 1) holds nothing to continue:
    the distillation starts from round 1 and leftover files go."""
    from mario_dqn import distill as D

    store = RoundStore(tmp_path / "out.partial", identity({"seed": 0}, {}))
    store.directory.mkdir()
    (store.directory / "round-001.npz").write_bytes(b"half written")
    teachers, _ = _faked(monkeypatch)
    lines: list[str] = []
    D.distill(teachers, DistillSettings(rounds=1, episodes=2, epochs=1, batch_size=8, eval_episodes=1, workers=1),
              log=lines.append, store=store)
    assert lines[0].startswith("round 1/1, 1-1: teacher played") and store.rounds_done() == 1


@pytest.mark.parametrize("changed, named", [
    ({"settings": {"seed": 1, "rounds": 5}}, "another --seed (0, now 1)"),
    ({"settings": {"seed": 0, "rounds": 4}}, "another --rounds (5, now 4)"),
    ({"teachers": {"1-1": "aa", "1-2": "cc"}}, "another teacher of 1-2 ('bb', now 'cc')"),
    ({"teachers": {"1-2": "bb", "1-1": "aa"}}, "another --stages ('1-1,1-2', now '1-2,1-1')"),
])
def test_rounds_of_another_distillation_are_refused_in_one_line(tmp_path, changed, named):
    started = {"settings": {"seed": 0, "rounds": 5}, "teachers": {"1-1": "aa", "1-2": "bb"}}
    RoundStore(tmp_path, identity(started["settings"], started["teachers"])).save(
        [{"round": 1}], np.zeros((1, 2), np.uint8), np.zeros((1, 2), np.float32), np.zeros(1, np.int64),
        online=[np.ones(2)], policy=[np.ones(2)], optimizer=[np.zeros(1)], kept=None, wall_s=1.0)
    now = {**started, **changed}
    with pytest.raises(DistillError) as err:
        RoundStore(tmp_path, identity(now["settings"], now["teachers"])).check()
    assert named in str(err.value) and "--force to start over" in str(err.value) and "\n" not in str(err.value)
    RoundStore(tmp_path, identity({**started["settings"], "workers": 4}, started["teachers"])).check()  # free


def test_the_store_gives_back_what_it_kept(tmp_path):
    store = RoundStore(tmp_path / "s", identity({}, {}))
    rng = np.random.default_rng(0)
    rounds_data = [(rng.integers(0, 256, (n, 4, 4, 2), dtype=np.uint8), rng.normal(size=(n, 3)).astype(np.float32),
                    np.full(n, n % 2)) for n in (3, 5)]
    weights = [rng.normal(size=(2, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)]
    rows: list[dict] = []
    for r, (states, labels, groups) in enumerate(rounds_data):
        rows.append({"round": r + 1, "loss": 0.5 / (r + 1)})
        store.save(rows, states, labels, groups, online=weights, policy=[w * 2 for w in weights],
                   optimizer=[np.array(7, np.int64)], kept=((0.5, 0.75, 99.0), 1, [w * 3 for w in weights]),
                   wall_s=12.5 * (r + 1))
    saved = store.load()
    assert saved.rounds == rows and saved.wall_s == 25.0 and store.rounds_done() == 2
    for (states, labels, groups), got_s, got_l, got_g in zip(rounds_data, saved.states, saved.labels, saved.groups):
        np.testing.assert_array_equal(got_s, states)
        np.testing.assert_array_equal(got_l, labels)
        np.testing.assert_array_equal(got_g, groups)
    assert saved.kept[:2] == ((0.5, 0.75, 99.0), 1)
    np.testing.assert_array_equal(saved.kept[2][1], weights[1] * 3)
    np.testing.assert_array_equal(saved.policy[0], weights[0] * 2)
    assert saved.optimizer[0] == 7 and not list(store.directory.glob(".tmp-*"))


def test_stacked_arrays_read_as_the_joined_array():
    from mario_dqn.distill import Stacked

    rng = np.random.default_rng(3)
    parts = [rng.integers(0, 256, (n, 2, 3), dtype=np.uint8) for n in (4, 0, 1, 7)]
    joined = np.concatenate(parts)
    stacked = Stacked(parts)
    assert len(stacked) == 12
    for rows in (np.arange(12), np.array([0, 3, 4, 11]), np.array([4]), np.sort(rng.choice(12, 5, replace=False))):
        np.testing.assert_array_equal(stacked[rows], joined[rows])


def test_fit_on_stacked_states_trains_as_on_the_joined_array():
    """The same minibatches in the same order: the same loss and weights, to the bit."""
    import keras

    from mario_dqn.distill import Stacked, fit

    rng = np.random.default_rng(4)
    parts = [rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8) for n in (9, 14)]
    teacher_q = rng.normal(0, 0.05, (23, 3)).astype(np.float32)
    settings = DistillSettings(epochs=2, batch_size=5)
    results = []
    for states in (np.concatenate(parts), Stacked(parts)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4, 4, 1), dtype="uint8"), keras.layers.Rescaling(1 / 255),
                                  keras.layers.Flatten(), keras.layers.Dense(3)])
        loss = fit(model, states, teacher_q, settings, keras.optimizers.Adam(1e-2))
        results.append((loss, model.get_weights()))
    (loss_a, weights_a), (loss_b, weights_b) = results
    assert loss_a == loss_b
    for a, b in zip(weights_a, weights_b, strict=True):
        np.testing.assert_array_equal(a, b)
