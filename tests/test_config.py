"""config/: overrides, validation and the lossless JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

import config as C


def test_defaults_are_valid_and_frozen():
    cfg = C.validate(C.Config())
    assert cfg.env.stages == ("1-1",) and cfg.env.action_set == "right_only"
    assert cfg.env.frame_skip == 4 and cfg.env.stack_size == 4 and cfg.env.frame_size == 84
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.agent.gamma = 0.5  # type: ignore[misc]


def test_every_field_has_a_doc():
    rows = C.field_docs()
    assert len(rows) >= 30
    for key, _, doc in rows:
        assert doc and doc[0].isupper(), f"{key} needs a docstring"


def test_overrides_parse_each_type():
    base = C.Config()
    cfg = C.apply_overrides(base, [
        "agent.gamma=0.9", "n_step=5", "replay.capacity=1e4", "prioritized=no",
        "env.stages=1-1, 2-3", "action_set=complex", "total_steps=100_000", "dueling=false",
    ])
    assert cfg.agent.gamma == 0.9 and isinstance(cfg.agent.gamma, float)
    assert cfg.agent.n_step == 5
    assert cfg.replay.capacity == 10_000 and isinstance(cfg.replay.capacity, int)
    assert cfg.replay.prioritized is False and cfg.agent.dueling is False
    assert cfg.env.stages == ("1-1", "2-3")
    assert cfg.env.action_set == "complex"
    assert cfg.runner.total_steps == 100_000
    # the original is untouched
    assert base == C.Config() and base.agent.gamma != 0.9


def test_later_override_wins():
    assert C.apply_overrides(C.Config(), ["gamma=0.5", "gamma=0.7"]).agent.gamma == 0.7


@pytest.mark.parametrize(
    "override,message",
    [
        ("gama=0.9", "unknown config key 'gama'"),
        ("agent.nope=1", "unknown config key 'agent.nope'"),
        ("brain.gamma=1", "unknown config section 'brain'"),
        ("gamma", "expected key=value"),
        ("gamma=abc", "bad value 'abc' for agent.gamma: expected float"),
        ("gamma=1.5", "agent.gamma must be <= 1.0"),
        ("n_step=0", "agent.n_step must be >= 1"),
        ("capacity=1.5", "expected int"),
        ("learning_rate=0", "agent.learning_rate must be > 0.0"),
        ("dueling=maybe", "expected bool"),
        ("action_set=all", "env.action_set must be one of right_only, simple, complex"),
        ("stages=9-1", "world must be 1-8"),
        ("stages=1-5", "stage must be 1-4"),
        ("stages=one", "expected 'W-S'"),
        ("stages=", "at least one stage"),
        ("epsilon_end=0.9", None),  # fine alone (start is 1.0) ...
    ],
)
def test_bad_overrides_are_rejected_with_a_clear_message(override, message):
    if message is None:
        C.apply_overrides(C.Config(), [override])
        return
    with pytest.raises(C.ConfigError) as err:
        C.apply_overrides(C.Config(), [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_cross_field_rule():
    with pytest.raises(C.ConfigError, match="epsilon_end must be <= agent.epsilon_start"):
        C.apply_overrides(C.Config(), ["epsilon_start=0.1", "epsilon_end=0.2"])
    with pytest.raises(C.ConfigError, match="epsilon_per_env_base must be <= agent.epsilon_start"):
        C.apply_overrides(C.Config(), ["epsilon_start=0.3", "epsilon_per_env_base=0.4"])
    C.apply_overrides(C.Config(), ["epsilon_start=0.4", "epsilon_per_env_base=0.4"])


def test_json_round_trip_is_lossless():
    cfg = C.apply_overrides(C.Config(), ["gamma=0.123456789012345", "stages=1-1,8-4", "seed=7",
                                         "learning_rate=6.25e-5", "prioritized=true"])
    text = C.to_json(cfg)
    back = C.from_json(text)
    assert back == cfg
    assert C.to_json(back) == text
    assert json.loads(text)["format_version"] == C.CONFIG_FORMAT_VERSION


def test_json_ints_for_floats_are_accepted():
    data = C.to_dict(C.Config())
    data["agent"]["gamma"] = 1  # a hand-edited file may drop the ".0"
    assert C.from_dict(data).agent.gamma == 1.0


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d["agent"].pop("gamma"), "missing: gamma"),
        (lambda d: d["agent"].update(extra=1), "unknown config key(s) in agent: extra"),
        (lambda d: d.pop("replay"), "missing section 'replay'"),
        (lambda d: d.update(format_version=99), "format_version 99 is not supported"),
        (lambda d: d.update(plugins={}), "unknown config section(s): plugins"),
        (lambda d: d["env"].update(stages="1-1"), "env.stages must be a list of strings"),
        (lambda d: d["agent"].update(gamma="high"), "agent.gamma must be a number"),
        (lambda d: d["agent"].update(dueling=1), "agent.dueling must be true or false"),
    ],
)
def test_bad_config_files_are_refused(mutate, message):
    data = C.to_dict(C.Config())
    mutate(data)
    with pytest.raises(C.ConfigError) as err:
        C.from_dict(data)
    assert message in str(err.value)


def test_invalid_json_text_is_refused():
    with pytest.raises(C.ConfigError, match="not valid JSON"):
        C.from_json("{not json")


# ------------------------------------------------------------------- presets

ROOT = Path(__file__).resolve().parent.parent


def _main(*args: str) -> subprocess.CompletedProcess:
    """The real CLI; these commands are refused or answered before TensorFlow loads."""
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_the_w11_a_preset_is_the_config_w11_a_was_trained_with():
    """tests/data/w11-a-config.json is the config.json of run w11-a (shipped 2026-11-22);
    the preset must reproduce every field of it whatever today's defaults are (keep_models
    did not exist then and is a record-keeping switch, not a training setting)."""
    from config import presets

    doc, items = presets.load("w11-a")
    assert "w11-a" in doc
    got = C.apply_overrides(C.Config(), items)
    want = C.from_json((ROOT / "tests" / "data" / "w11-a-config.json").read_text())
    want = C.replace(want, {"runner": {"keep_models": got.runner.keep_models}})
    assert C.to_dict(got) == C.to_dict(want)


def test_the_world_1_3_preset_is_the_config_of_w13j_s0():
    """w13j-s0 was started with `--world 1 --stage 3 --set restart_from_best=0.5 --set
    restart_guided=32` on the defaults of 61d8a5c; the preset gives those fields, and only those."""
    from config import presets

    _, items = presets.load("world-1-3")
    got = C.apply_overrides(C.Config(), items)
    want = C.apply_overrides(C.Config(), ["env.stages=1-3", "restart_from_best=0.5", "restart_guided=32"])
    assert C.to_dict(got) == C.to_dict(want) and got.env.restart_keep == 4


def test_the_world_1_2_preset_is_the_config_of_w12n_s0():
    """w12n-s0 was started with `--world 1 --stage 2 --set env.noop_max=30` on the defaults of d4cd31f."""
    from config import presets

    _, items = presets.load("world-1-2")
    got = C.apply_overrides(C.Config(), items)
    want = C.apply_overrides(C.Config(), ["env.stages=1-2", "noop_max=30"])
    assert C.to_dict(got) == C.to_dict(want) and got.env.noop_max == 30


def test_the_world_1_preset_is_the_config_of_w1x_s0():
    """w1x-s0 was started with `--preset world-1 --set env.restart_explore=32` on the preset of
    5303052 (w1n-s0's); the preset now gives that: world-1-2's no-op starts and world-1-3's
    guided restarts with exploration steps, on 1-1 to 1-4, every other field the default's."""
    import json

    from config import presets

    _, items = presets.load("world-1")
    got = C.apply_overrides(C.Config(), items)
    want = C.apply_overrides(C.Config(), ["env.stages=1-1,1-2,1-3,1-4", "noop_max=30", "restart_from_best=0.5",
                                          "restart_keep=4", "restart_guided=32", "restart_explore=32"])
    assert C.to_dict(got) == C.to_dict(want) and got.env.stages == ("1-1", "1-2", "1-3", "1-4")
    run = ROOT / "save" / "runs" / "w1x-s0" / "config.json"  # git-ignored: checked where the run is
    if run.exists():
        assert json.loads(run.read_text())["env"] == C.to_dict(got)["env"]


def test_presets_through_the_cli(tmp_path):
    listed = _main("config", "--presets")
    assert listed.returncode == 0 and listed.stdout.startswith("w11-a\n"), listed.stdout
    shown = _main("config", "--preset", "w11-a")
    assert shown.returncode == 0 and "runner.num_envs = 2\n" in shown.stdout
    assert f"runner.num_envs = {C.Config().runner.num_envs}\n" in _main("config").stdout
    for args in (("train", "--preset", "nope", "--save-dir", str(tmp_path)), ("config", "--preset", "nope")):
        refused = _main(*args)
        assert refused.returncode == 2, refused.stderr
        names = ", ".join(sorted(path.stem for path in (ROOT / "config" / "presets").glob("*.json")))
        assert {"w11-a", "world-1", "world-1-2", "world-1-3"} <= set(names.split(", "))  # the shipped ones
        assert refused.stderr.count("\n") == 1 and f"unknown preset 'nope'; presets: {names}\n" in refused.stderr
    assert not any(tmp_path.iterdir()), "a refused preset writes no run"
    resumed = _main("train", "--resume", str(tmp_path), "--preset", "w11-a")
    assert resumed.returncode == 2 and "only --steps may change" in resumed.stderr


def test_a_malformed_preset_is_named(tmp_path, monkeypatch):
    from config import presets

    monkeypatch.setattr(presets, "PRESET_DIR", tmp_path)
    (tmp_path / "bad.json").write_text('{"doc": "x", "set": ["lr=1"]}')
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(C.ConfigError, match="must be an object with 'doc'"):
        presets.load("bad")
    with pytest.raises(C.ConfigError, match="broken.json is unreadable"):
        presets.load("broken")
    assert presets.available() == ["bad", "broken"]
