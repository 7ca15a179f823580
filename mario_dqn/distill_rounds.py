"""A distillation's finished rounds on disk, so that a stopped one continues where it was.

Why: a distillation of four stages takes about an hour and a half on two cores, one of
more stages longer than a working session, and before this a stop (Ctrl-C, the session's
end) threw every round away. After each round the store holds what the next round needs
and nothing is recomputed on resume:

    identity.json     the settings and the teachers (by checksum) it was started with
    round-001.npz     that round's states, the teachers' labels and each state's stage
    progress.json     the rounds done, their records, the round kept so far, wall seconds
    weights.npz       the student (trained and playing weights), Adam's variables (its
                      moving average of the weights among them) and the kept round's weights

``progress.json`` is replaced last, so it never names a round whose files are not whole;
a stop inside a round leaves the rounds before it. The rounds' seeds and the shuffling
depend only on the round and the number of states, so a resumed distillation gives
the same student as one that ran through (tests/test_distill_rounds.py).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mario_dqn.distill_settings import DistillError

RESUME_FREE = ("workers",)
"""Settings that may differ on resume: they change how fast the rounds run, not what they give."""


@dataclass
class Saved:
    """The state after the last finished round (what :meth:`RoundStore.load` returns)."""

    rounds: list[dict[str, Any]]
    """The finished rounds' records, in order."""
    states: list[np.ndarray]
    labels: list[np.ndarray]
    groups: list[np.ndarray]
    """Per round: the states gathered, the teachers' Q-values of them, each one's stage index."""
    online: list[np.ndarray]
    """The trained weights."""
    policy: list[np.ndarray]
    """The weights the student plays with (their moving average when it is on)."""
    optimizer: list[np.ndarray]
    """Adam's variables, in ``optimizer.variables`` order."""
    kept: tuple[tuple[float, ...], int, list[np.ndarray]] | None
    """The best round so far: its score, its number and its weights."""
    wall_s: float


def identity(settings: dict[str, Any], teachers: dict[str, Any]) -> dict[str, Any]:
    """What a resumed distillation must share with the one it continues: every setting
    except :data:`RESUME_FREE`, the stages in their order (a state's stage is kept as its
    index in it) and the teachers (stage -> their model's checksum)."""
    kept = {k: v for k, v in settings.items() if k not in RESUME_FREE}
    return {"settings": {**kept, "stages": ",".join(teachers)}, "teachers": teachers}


class RoundStore:
    """The finished rounds of one distillation in ``directory`` (created on the first save)."""

    def __init__(self, directory: Path, ident: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.ident = json.loads(json.dumps(ident))  # as it reads back from JSON (tuples become lists)

    def exists(self) -> bool:
        """Whether it holds a finished round."""
        return (self.directory / "progress.json").is_file()

    def rounds_done(self) -> int:
        return int(json.loads((self.directory / "progress.json").read_text())["rounds_done"])

    def check(self) -> None:
        """Raise :class:`DistillError` (one line) when the stored rounds come from another
        distillation: other settings or other teachers."""
        try:
            stored = json.loads((self.directory / "identity.json").read_text())
        except (OSError, ValueError) as err:
            raise DistillError(f"{self.directory} is unreadable ({err}); pass --force to start over") from None
        for part in ("settings", "teachers"):
            mine, theirs = self.ident[part], stored.get(part, {})
            for key in sorted(set(mine) | set(theirs)):
                if mine.get(key) != theirs.get(key):
                    what = f"--{key.replace('_', '-')}" if part == "settings" else f"teacher of {key}"
                    raise DistillError(
                        f"{self.directory} holds rounds of a distillation with another {what} "
                        f"({theirs.get(key)!r}, now {mine.get(key)!r}); give its options again to continue it, "
                        "or pass --force to start over")

    def load(self) -> Saved:
        """The state after the last finished round (call :meth:`check` first)."""
        progress = json.loads((self.directory / "progress.json").read_text())
        done = progress["rounds_done"]
        states, labels, groups = [], [], []
        for r in range(1, done + 1):
            with np.load(self.directory / f"round-{r:03d}.npz") as data:
                states.append(data["states"])
                labels.append(data["labels"])
                groups.append(data["groups"])
        with np.load(self.directory / "weights.npz") as data:
            parts = {name: [data[f"{name}_{i}"] for i in range(progress["sizes"][name])]
                     for name in ("online", "policy", "optimizer", "kept")}
        kept = None
        if progress["kept"] is not None:
            kept = (tuple(progress["kept"]["score"]), progress["kept"]["round"], parts["kept"])
        return Saved(progress["rounds"], states, labels, groups, parts["online"], parts["policy"],
                     parts["optimizer"], kept, progress["wall_s"])

    def save(self, rounds: list[dict[str, Any]], states: np.ndarray, labels: np.ndarray, groups: np.ndarray,
             online: list[np.ndarray], policy: list[np.ndarray], optimizer: list[np.ndarray],
             kept: tuple[tuple[float, ...], int, list[np.ndarray]] | None, wall_s: float) -> None:
        """Keep round ``len(rounds)``: its new states (``states``, ``labels``, ``groups``:
        this round's only) and the state after it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (self.directory / "identity.json").is_file():
            _replace(self.directory / "identity.json", lambda path: path.write_text(json.dumps(self.ident, indent=1)))
        done = len(rounds)
        _replace(self.directory / f"round-{done:03d}.npz",
                 lambda path: _savez(path, states=states, labels=labels, groups=groups))
        parts = {"online": online, "policy": policy, "optimizer": optimizer, "kept": kept[2] if kept else []}
        _replace(self.directory / "weights.npz",
                 lambda path: _savez(path, **{f"{name}_{i}": np.asarray(w) for name, ws in parts.items()
                                               for i, w in enumerate(ws)}))
        progress = {"rounds_done": done, "rounds": rounds, "wall_s": wall_s,
                    "kept": {"score": list(kept[0]), "round": kept[1]} if kept else None,
                    "sizes": {name: len(ws) for name, ws in parts.items()}}
        _replace(self.directory / "progress.json", lambda path: path.write_text(json.dumps(progress)))

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _savez(path: Path, **arrays: np.ndarray) -> None:
    with open(path, "wb") as file:  # a file object: np.savez would add .npz to the temporary name
        np.savez(file, **arrays)


def _replace(path: Path, write: Any) -> None:
    """Write ``path`` through a temporary sibling and rename it into place (atomic on one
    file system), flushed to disk first, so a crash leaves the old file or the new one."""
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        write(tmp)
        with open(tmp, "rb") as file:
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise DistillError(f"cannot write {path}: {err.strerror or err}") from None
