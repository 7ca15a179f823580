"""A campaign's plan: its trials (stage x seed x grid values), each resolved and validated
as ``train`` would before anything starts, and saved as campaign.json so that
``campaign --resume`` needs nothing else. Pure data: no Ray, no processes, so the table
(mario_dqn.campaign_table) and the runner (mario_dqn.campaign) both build on it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

import config as C

PLAN_FILE = "campaign.json"
PLAN_VERSION = 1
LOG_DIR = "logs"
"""``<campaign>/logs/<trial>.log``: the trial's train output; ``<trial>.attempts.jsonl``: one
line per attempt (node, host, worker and trainer pids), what the table's nodes column reads."""

class CampaignError(Exception):
    """A campaign that cannot start (bad input, no cluster): one line, before any trial."""


@dataclasses.dataclass(frozen=True)
class Trial:
    """One train run of the campaign: its stage, seed and grid values."""

    name: str
    stage: str
    seed: int
    overrides: tuple[str, ...]
    """The grid's ``key=value`` items of this trial (after the campaign's ``--set``)."""
    steps: int
    envs: int


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a campaign runs, saved as campaign.json so that ``--resume`` needs nothing else."""

    trials: tuple[Trial, ...]
    preset: str | None = None
    sets: tuple[str, ...] = ()
    cpus_per_trial: float | None = None
    """None: the trials' envs + 1, capped at the largest node's CPUs."""
    gpus_per_trial: float = 0.0
    max_retries: int = 3
    solve_episodes: int = 20
    """Episodes per kept model for the time-to-solve columns (0: not measured)."""

    def train_args(self, trial: Trial, campaign_dir: Path) -> list[str]:
        """The ``main.py`` arguments of ``trial``'s first start. ``--save-dir`` is absolute:
        the trainer runs with the repository as its cwd, and a Ray worker's cwd is not the
        driver's, so a relative one would put the run where the driver never looks."""
        world, stage = trial.stage.split("-")
        args = ["train", "--name", trial.name, "--save-dir", os.path.abspath(campaign_dir), "--world", world, "--stage", stage,
                "--seed", str(trial.seed), "--steps", str(trial.steps), "--envs", str(trial.envs), "--no-progress"]
        if self.preset is not None:
            args += ["--preset", self.preset]
        for item in (*self.sets, *trial.overrides):
            args += ["--set", item]
        return args

    def to_json(self, campaign_dir: Path) -> str:
        data = dataclasses.asdict(self)
        data["version"] = PLAN_VERSION
        for row, trial in zip(data["trials"], self.trials):
            row["args"] = self.train_args(trial, campaign_dir)  # for the reader; rebuilt from the fields
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        data.pop("version", None)
        trials = tuple(Trial(**{**{k: v for k, v in row.items() if k != "args"},
                                "overrides": tuple(row["overrides"])}) for row in data.pop("trials"))
        return cls(trials=trials, **{**data, "sets": tuple(data.get("sets", ()))})


def plan_default(name: str) -> Any:
    """The default of :class:`Plan`'s field ``name``: the one place its value is written
    (the command line's help and ``make_plan`` read it here)."""
    field, = (field for field in dataclasses.fields(Plan) if field.name == name)
    return field.default


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _grid_axes(grid: Sequence[str]) -> list[list[str]]:
    """``['agent.n_step=3,10', ...]`` -> ``[['agent.n_step=3', 'agent.n_step=10'], ...]``."""
    from config.overrides import resolve_key

    axes, keys = [], set()
    for item in grid:
        key, sep, values = item.partition("=")
        if not sep or not _split(values):
            raise CampaignError(f"--grid {item!r}: expected KEY=V1,V2 like agent.n_step=3,10")
        try:
            section, name = resolve_key(key)
        except C.ConfigError as err:
            raise CampaignError(f"--grid {item!r}: {err}") from None
        full = f"{section}.{name}"
        if full in ("env.stages", "runner.seed", "runner.total_steps", "runner.num_envs", "paths.save_dir"):
            raise CampaignError(f"--grid {item!r}: {full} is set by --stages, --seeds, --steps, --envs, --save-dir")
        if full in keys:
            raise CampaignError(f"--grid {item!r}: {full} is in the grid twice")
        keys.add(full)
        axes.append([f"{full}={value}" for value in _split(values)])
    return axes


def _product(axes: list[list[str]]) -> list[tuple[str, ...]]:
    combos: list[tuple[str, ...]] = [()]
    for axis in axes:
        combos = [(*combo, item) for combo in combos for item in axis]
    return combos


def _trial_name(stage: str, seed: int, overrides: tuple[str, ...]) -> str:
    """``2-1-s0-n_step3``: the stage, the seed and each grid value under its field's name."""
    parts = [stage, f"s{seed}"] + [f"{key.split('.')[-1]}{value}" for key, value in
                                   (item.split("=", 1) for item in overrides)]
    return re.sub(r"[^A-Za-z0-9._+-]", "_", "-".join(parts))


def make_plan(stages: str, seeds: str, grid: Sequence[str] = (), *, steps: int | None = None,
              envs: int | None = None, preset: str | None = None, sets: Sequence[str] = (),
              cpus_per_trial: float | None = None, gpus_per_trial: float = 0.0, max_retries: int | None = None,
              solve_episodes: int | None = None) -> tuple[Plan, C.Config]:
    """The campaign's trials, every one's config resolved and validated as ``train`` would
    (defaults, preset, ``--set``, grid, then the named options), so a bad stage, key or
    value is refused before Ray starts. Returns the plan and the first trial's config.
    ``max_retries`` and ``solve_episodes``: None is :class:`Plan`'s default."""
    from config import presets

    try:
        stage_names = [f"{w}-{s}" for w, s in map(C.parse_stage, _split(stages))]
    except C.ConfigError as err:
        raise CampaignError(f"--stages: {err}") from None
    try:
        seed_values = [int(part) for part in _split(seeds)]
    except ValueError:
        raise CampaignError(f"--seeds {seeds!r}: expected integers like 0,1") from None
    if not stage_names or not seed_values:
        raise CampaignError("name at least one stage (--stages 1-1) and one seed (--seeds 0)")
    for what, values in (("--stages", stage_names), ("--seeds", seed_values)):
        if len(set(values)) != len(values):
            raise CampaignError(f"{what}: a value is named twice")
    if preset is not None:  # an unknown preset is one error, not one per trial
        try:
            presets.load(preset)
        except C.ConfigError as err:
            raise CampaignError(str(err)) from None
    trials, first = [], None
    for stage in stage_names:
        for seed in seed_values:
            for combo in _product(_grid_axes(grid)):
                name = _trial_name(stage, seed, combo)
                named = {"env.stages": stage, "runner.seed": seed, "runner.total_steps": steps, "runner.num_envs": envs}
                try:
                    resolved = presets.resolve(preset, [*sets, *combo], named)  # as train resolves it
                except C.ConfigError as err:
                    raise CampaignError(f"trial {name}: {err}") from None
                first = first or resolved
                trials.append(Trial(name, stage, seed, tuple(combo), resolved.runner.total_steps,
                                    resolved.runner.num_envs))
    if len({t.name for t in trials}) != len(trials):
        raise CampaignError("two trials would share a name: grid values differ only in characters "
                            "a directory name cannot hold")
    given = {"max_retries": max_retries, "solve_episodes": solve_episodes}
    plan = Plan(tuple(trials), preset, tuple(sets), cpus_per_trial, gpus_per_trial,
                **{key: value for key, value in given.items() if value is not None})
    assert first is not None
    return plan, first


def load_plan(campaign_dir: Path, max_retries: int | None = None, cpus_per_trial: float | None = None,
              gpus_per_trial: float | None = None, solve_episodes: int | None = None) -> Plan:
    """The plan saved in ``campaign_dir``; the per-trial resources, retries and time-to-solve
    episodes given (not None) replace the saved ones, as the cluster it finishes on may differ
    (and measuring is no part of a trial's training)."""
    path = campaign_dir / PLAN_FILE
    try:
        plan = Plan.from_json(path.read_text())
    except OSError as err:
        raise CampaignError(f"{campaign_dir} is not a campaign: cannot read {path.name} "
                            f"({err.strerror or err})") from None
    except (ValueError, KeyError, TypeError) as err:
        raise CampaignError(f"{path} is not a campaign plan of this version ({type(err).__name__}: {err})") from None
    changes = {"max_retries": max_retries, "cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial,
               "solve_episodes": solve_episodes}
    return dataclasses.replace(plan, **{key: value for key, value in changes.items() if value is not None})
