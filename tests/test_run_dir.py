"""The run directory's owner (mario_dqn.run_dir): creating a run, refusing to overwrite
one, where a resume continues, and what a failed write while training reports."""

from __future__ import annotations

import errno
import json
import os

import pytest

import config as C
from mario_dqn import checkpoint as ckpt
from mario_dqn import run_dir as RD
from mario_dqn.errors import MarioDQNError, RunDirError, RunWriteError, UserInputError


def _config(tmp_path) -> C.Config:
    return C.apply_overrides(C.Config(), [f"paths.save_dir={tmp_path}", "total_steps=300"])


def test_a_new_run_has_its_layout_and_the_resolved_config(tmp_path):
    config = _config(tmp_path)
    run = RD.new_run_dir(config, "first")
    assert run == tmp_path / "first" and RD.videos_dir(run).is_dir()
    assert C.from_json(RD.config_path(run).read_text()) == config
    assert ckpt.read_run_config(run) == config, "what resume, play and evaluate read back"
    assert RD.checkpoints_dir(run) == run / "checkpoints" and RD.models_dir(run) == run / ckpt.MODELS_DIR
    assert RD.metrics_path(run) == run / "metrics.csv"
    named = RD.new_run_dir(config)
    assert named.name.startswith("world-1-1-"), "the default name says the stage and the time"


def test_an_existing_run_is_refused_without_force_and_left_as_it_was(tmp_path):
    config = _config(tmp_path)
    run = RD.new_run_dir(config, "taken")
    (run / "metrics.csv").write_text("kept\n")
    with pytest.raises(RunDirError, match="already exists; use --resume .* or --force"):
        RD.new_run_dir(config, "taken")
    assert (run / "metrics.csv").read_text() == "kept\n"
    replaced = RD.new_run_dir(config, "taken", force=True)
    assert replaced == run and not (run / "metrics.csv").exists() and RD.config_path(run).is_file()


def test_force_replaces_only_a_mario_dqn_run(tmp_path):
    config = _config(tmp_path)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(RunDirError, match="not a mario-dqn run"):
        RD.new_run_dir(config, "photos", force=True)
    assert (other / "holiday.jpg").exists()
    (tmp_path / "empty").mkdir()
    assert RD.new_run_dir(config, "empty", force=True).is_dir(), "an empty directory may be used"
    for bad in ("a/b", ".", ".."):
        with pytest.raises(RunDirError, match="bad run name"):
            RD.new_run_dir(config, bad)


def test_a_campaign_name_is_checked_as_a_run_name_is(tmp_path):
    from mario_dqn.campaign import new_campaign_dir
    from mario_dqn.campaign_plan import CampaignError
    for bad in ("a/b", ".", ".."):
        assert not RD.is_plain_name(bad)
        with pytest.raises(CampaignError, match="bad campaign name"):
            new_campaign_dir(tmp_path, bad)
    assert RD.is_plain_name("w21-any-s0")
    assert new_campaign_dir(tmp_path, "w2") == tmp_path / "w2"


def test_resume_point_refuses_a_run_with_nothing_to_continue(tmp_path):
    run = RD.new_run_dir(_config(tmp_path), "fresh")
    with pytest.raises(ckpt.CheckpointError, match="no complete checkpoint"):
        RD.resume_point(run)
    with pytest.raises(ckpt.CheckpointError):
        RD.resume_point(tmp_path / "missing")


def test_the_package_errors_carry_their_exit_codes():
    assert issubclass(RunDirError, UserInputError) and issubclass(UserInputError, MarioDQNError)
    assert UserInputError("x").exit_code == 2 and RunWriteError("x").exit_code == 1
    from mario_dqn.window import WindowError

    assert issubclass(WindowError, UserInputError), "no display: a refusal, exit 2"


def test_training_failures_map_to_one_line_or_stay_bugs(tmp_path):
    run = RD.new_run_dir(_config(tmp_path), "run")
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(run / "metrics.csv"))
    mapped = RD.training_failure(full, run)
    assert isinstance(mapped, RunWriteError) and mapped.exit_code == 1
    assert str(mapped) == (f"cannot write {run / 'metrics.csv'}: No space left on device; "
                           "training stopped before its first checkpoint")
    refusal = UserInputError("no")
    assert RD.training_failure(refusal, run) is refusal
    bad_config = C.ConfigError("agent.gamma must be <= 1.0")
    assert RD.training_failure(bad_config, run) is bad_config
    assert RD.training_failure(ValueError("a bug"), run) is None, "a bug keeps its traceback"
    restoring = run / "checkpoints" / "step-1" / "state.json"
    stale = RD.training_failure(KeyError("ep_return"), run, restoring)
    assert isinstance(stale, UserInputError) and f"{restoring} does not match this version" in str(stale)
    assert json.loads(RD.config_path(run).read_text())["runner"]["total_steps"] == 300


def test_a_kept_model_is_known_by_its_place_in_a_run(tmp_path, monkeypatch):
    run = tmp_path / "run"
    models = run / "models"
    models.mkdir(parents=True)
    kept = models / "step-000000000100.weights.h5"
    kept.write_bytes(b"weights")
    (models / "notes.weights.h5").write_bytes(b"")
    (tmp_path / "step-000000000100.weights.h5").write_bytes(b"")
    assert ckpt.kept_model_run(kept) == run and RD.run_of(kept) == run
    monkeypatch.chdir(models)  # a bare file name, from inside models/
    assert ckpt.kept_model_run(kept.name) == run
    # not a kept model: a file of another name, one outside a models/ directory, a missing one
    for path in (models / "notes.weights.h5", tmp_path / "step-000000000100.weights.h5",
                 models / "step-000000000200.weights.h5"):
        assert ckpt.kept_model_run(path) is None
