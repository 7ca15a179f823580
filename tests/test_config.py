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


def _frozen(path: str) -> C.Config:
    """A run's frozen config.json (a shipped agent carries its run's), read as today's
    Config: fields retired since are dropped at their neutral values (config.overrides'
    table) and fields added since take the value they had then, so comparing
    ``C.to_dict`` on both sides compares exactly the fields that exist today."""
    return C.from_json((ROOT / path).read_text())


def _preset(name: str, *run_options: str) -> C.Config:
    """Today's defaults with the preset and the run's own command-line options applied."""
    from config import presets

    _, items = presets.load(name)
    return C.apply_overrides(C.Config(), [*items, *run_options])


def test_the_world_1_3_preset_is_the_config_of_w13j_s0():
    """save/pretrained/world-1-3 ships w13j-s0's 400k model with the config.json the run
    was trained with (`--preset world-1-3`, seed 0): the preset on today's defaults must
    give every field of it, whatever the defaults have become since."""
    got = _preset("world-1-3")
    assert C.to_dict(got) == C.to_dict(_frozen("save/pretrained/world-1-3/config.json"))
    assert got.env.restart_keep == 4 and got.env.restart_guided == 32


def test_the_world_1_2_preset_is_the_config_of_w12n_s1_and_w12n_s0():
    """save/pretrained/world-1-2 ships w12n-s1 (`train --preset world-1-2 --seed 1`; its
    budget, runner.total_steps, was given with --steps); the 1-2 agent before it (da93a50,
    w12n-s0: seed 0, the default budget) is compared too where git history is at hand."""
    got = _preset("world-1-2", "seed=1", "total_steps=400000")
    assert C.to_dict(got) == C.to_dict(_frozen("save/pretrained/world-1-2/config.json"))
    assert got.env.noop_max == 30
    old = subprocess.run(["git", "show", "da93a50:save/pretrained/world-1-2/config.json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60) if (ROOT / ".git").exists() else None
    if old is not None and old.returncode == 0:  # not a git checkout (a source archive): this part is skipped
        assert C.to_dict(_preset("world-1-2")) == C.to_dict(C.from_json(old.stdout))


def test_the_world_1_preset_is_the_config_of_w1x_s0():
    """w1x-s0 was started with `--preset world-1 --set env.restart_explore=32`; its run
    directory (and so its config.json) is not in the repository, so the preset is compared
    with what is: w13j-s0's frozen config (the guided restarts and every agent, replay and
    runner field of their day) with world-1-2's no-op starts (w12n-s1's frozen noop_max),
    the exploring restart steps w1x-s0 added, and the four stages of World 1."""
    import json

    got = _preset("world-1")
    stage_3 = _frozen("save/pretrained/world-1-3/config.json")
    noop_max = _frozen("save/pretrained/world-1-2/config.json").env.noop_max
    want = C.replace(stage_3, {"env": {"stages": ("1-1", "1-2", "1-3", "1-4"), "noop_max": noop_max,
                                       "restart_explore": 32}})
    assert C.to_dict(got) == C.to_dict(want) and noop_max == 30
    run = ROOT / "save" / "runs" / "w1x-s0" / "config.json"  # git-ignored: checked where the run is
    if run.exists():
        assert json.loads(run.read_text())["env"] == C.to_dict(got)["env"]


def test_the_any_stage_preset_is_a_recipe_for_every_stage():
    """any-stage is a candidate under measurement (issue 38): no run to compare with yet.
    It must load and leave the stage to --world/--stage (it sets no env.stages)."""
    from config import presets

    doc, items = presets.load("any-stage")
    assert doc and items
    assert not any(item.split("=", 1)[0].strip() in ("env.stages", "stages") for item in items)
    assert _preset("any-stage").env.stages == C.Config().env.stages


def test_presets_through_the_cli(tmp_path):
    listed = _main("config", "--presets")
    preset_files = sorted(path.stem for path in (ROOT / "config" / "presets").glob("*.json"))
    assert listed.returncode == 0, listed.stderr
    # each preset's name on a line of its own, in order, its doc indented under it
    assert [line for line in listed.stdout.splitlines() if not line.startswith(" ")] == preset_files, listed.stdout
    shown = _main("config", "--preset", "w11-a")
    assert shown.returncode == 0 and "runner.num_envs = 2\n" in shown.stdout
    assert f"runner.num_envs = {C.Config().runner.num_envs}\n" in _main("config").stdout
    for args in (("train", "--preset", "nope", "--save-dir", str(tmp_path)), ("config", "--preset", "nope")):
        refused = _main(*args)
        assert refused.returncode == 2, refused.stderr
        names = ", ".join(sorted(path.stem for path in (ROOT / "config" / "presets").glob("*.json")))
        assert {"w11-a", "world-1", "world-1-2", "world-1-3"} <= set(names.split(", "))  # the shipped ones
        assert refused.stderr.count("\n") == 1 and f"unknown preset 'nope'; presets: {names}\n" in refused.stderr
        assert refused.stderr.count("nope") == 1, refused.stderr  # named once, not "preset 'nope': unknown preset 'nope'"
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


# --------------------------------------------------------------------------- retired fields

RETIRED = {"munchausen_alpha": 0.0, "munchausen_tau": 0.03, "munchausen_clip": -1.0, "augment_shift": 0,
           "epsilon_per_env_base": 0.0, "epsilon_per_env_alpha": 7.0}
"""The agent fields retired in issue 37 and their neutral values."""


def test_the_retired_fields_are_gone_and_listed():
    from config.overrides import FIELDS_REMOVED

    assert {name for (section, name) in FIELDS_REMOVED if section == "agent"} == set(RETIRED)
    assert {name: removed.neutral for (_, name), removed in FIELDS_REMOVED.items()} == RETIRED
    assert not set(RETIRED) & {f.name for f in dataclasses.fields(C.AgentConfig)}
    assert not set(RETIRED) & set(C.to_dict(C.Config())["agent"])


@pytest.mark.parametrize("shipped", ["world-1-1", "world-1-2", "world-1-3", "world-1-4"])
def test_a_config_with_retired_fields_at_neutral_loads_as_the_new_one(shipped):
    """The per-stage World 1 agents' config.json files were written with the retired fields,
    at their neutral values: they load, and equal the same file without them. (Agents
    packaged since, world-1 and world-2-4, were written without them.)"""
    data = json.loads((ROOT / "save" / "pretrained" / shipped / "config.json").read_text())
    held = {name: data["agent"][name] for name in RETIRED if name in data["agent"]}
    assert held and held == {name: RETIRED[name] for name in held}, "the file holds retired fields, at neutral"
    without = json.loads(json.dumps(data))
    for name in held:
        del without["agent"][name]
    assert C.from_dict(data) == C.from_dict(without)
    assert not set(RETIRED) & set(C.to_dict(C.from_dict(data))["agent"]), "written back without them"


@pytest.mark.parametrize("values, named", [
    ({"munchausen_alpha": 0.9}, "agent.munchausen_alpha = 0.9"),
    ({"munchausen_alpha": 0.9, "munchausen_tau": 0.1}, "agent.munchausen_alpha = 0.9"),
    ({"augment_shift": 4}, "agent.augment_shift = 4"),
    ({"epsilon_per_env_base": 0.4}, "agent.epsilon_per_env_base = 0.4"),
])
def test_a_config_with_a_retired_field_in_use_is_refused_naming_it(values, named):
    data = C.to_dict(C.Config())
    data["agent"].update({**RETIRED, **values})
    with pytest.raises(C.ConfigError) as err:
        C.from_dict(data)
    message = str(err.value)
    assert message.startswith(named) and "removed" in message and "\n" not in message
    assert "docs/" in message, "it says where the evidence is"


def test_a_retired_field_that_only_mattered_with_one_off_loads_at_any_value():
    """munchausen_tau/clip did nothing without munchausen_alpha, epsilon_per_env_alpha nothing
    without epsilon_per_env_base: a run that set them alone behaved like the defaults."""
    data = C.to_dict(C.Config())
    data["agent"].update({**RETIRED, "munchausen_tau": 0.5, "munchausen_clip": -3.0, "epsilon_per_env_alpha": 2.0})
    assert C.from_dict(data) == C.Config()


@pytest.mark.parametrize("key", ["agent.munchausen_alpha", "munchausen_alpha", "agent.augment_shift",
                                 "epsilon_per_env_base", "agent.epsilon_per_env_alpha"])
def test_set_refuses_a_retired_field_even_at_its_neutral_value(key):
    name = key.split(".")[-1]
    with pytest.raises(C.ConfigError) as err:
        C.apply_overrides(C.Config(), [f"{key}={RETIRED[name]}"])
    assert str(err.value).startswith(f"config key agent.{name} was removed: ") and "docs/" in str(err.value)


def test_a_preset_may_not_name_a_retired_field(tmp_path, monkeypatch):
    """Presets go through --set's parser: naming a retired field is refused, even at its
    neutral value (the shipped w11-a preset listed two; they were taken out)."""
    from config import presets

    monkeypatch.setattr(presets, "PRESET_DIR", tmp_path)
    (tmp_path / "old.json").write_text(json.dumps({"doc": "x", "set": {"agent.augment_shift": 0}}))
    with pytest.raises(C.ConfigError, match="config key agent.augment_shift was removed"):
        C.apply_overrides(C.Config(), presets.load("old")[1])


def test_the_cli_refuses_a_retired_field_in_one_line(tmp_path):
    refused = _main("train", "--save-dir", str(tmp_path), "--set", "munchausen_alpha=0.9")
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: config key agent.munchausen_alpha was removed")
    assert refused.stderr.count("\n") == 1 and not any(tmp_path.iterdir())
