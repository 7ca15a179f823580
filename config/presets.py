"""Named presets: a JSON file of ``--set`` overrides under ``config/presets/``.

A preset is a setting a stage or an experiment needs beyond the defaults (a learning
rate, an action set, an episode cutoff), kept as a file so that a run of it is one
command, ``python main.py train --preset NAME``, and stays reproducible when the
defaults move on. Each file is::

    {"doc": "one line: what it is for and where its numbers come from",
     "set": {"agent.learning_rate": 1e-4, "env.no_progress_steps": 200}}

The values go through the same parser and validation as ``--set`` (they are turned
into ``key=value`` strings), so a preset can hold nothing ``--set`` could not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from config.overrides import ConfigError, apply_overrides
from config.settings import Config

PRESET_DIR = Path(__file__).resolve().parent / "presets"
"""Where presets live: ``<PRESET_DIR>/<name>.json``."""


def available() -> list[str]:
    """The names of the shipped presets, sorted."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.json"))


def _text(value: object) -> str:
    """A JSON value as ``--set`` would spell it (lists of stages joined by commas)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def load(name: str) -> tuple[str, list[str]]:
    """``(doc, ["key=value", ...])`` of preset ``name``; ConfigError naming the
    preset (and the ones there are) when it is unknown or malformed."""
    path = PRESET_DIR / f"{name}.json"
    if "/" in name or not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(available()) or 'none'}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"preset {path} is unreadable ({type(err).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("set"), dict) or not isinstance(data.get("doc"), str):
        raise ConfigError(f"preset {path} must be an object with 'doc' (a string) and 'set' (an object)")
    return data["doc"], [f"{key}={_text(value)}" for key, value in data["set"].items()]


def resolve(preset: str | None = None, sets: Sequence[str] = (), named: Mapping[str, object] | None = None) -> Config:
    """The config a run trains with: the defaults, then ``preset``'s items, then ``sets``
    (``--set``, in order), then the options a command names (``named``: key -> value,
    None skipped; the stage, seed, steps, envs): later wins. ``train`` and ``campaign``
    both resolve through this one function, so a campaign's trial is configured exactly
    as ``train`` would configure it."""
    items = (load(preset)[1] if preset is not None else []) + list(sets)
    items += [f"{key}={value}" for key, value in (named or {}).items() if value is not None]
    return apply_overrides(Config(), items)
