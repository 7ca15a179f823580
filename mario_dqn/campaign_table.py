"""A campaign's results: one row per trial, read from its run directory and written as
results.csv, results.json and results.md in the campaign directory.

Everything comes from the files every trial leaves (its newest checkpoint, metrics.csv,
kept models and the time-to-solve harness's cache), so the table of a resumed or
half-finished campaign is read the same way, and a trial run by hand reads the same.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mario_dqn import checkpoint as ckpt
from mario_dqn import run_dir as RD
from mario_dqn.campaign_plan import LOG_DIR
from mario_dqn.time_to_solve import MARKS, first_at, first_training_flag, measured_rows

if TYPE_CHECKING:
    from mario_dqn.campaign_plan import Plan, Trial

COLUMNS = ("trial", "stage", "seed", "overrides", "status", "steps", "wall_h", "first_flag_step", "first_flag_h",
           "steps_50", "hours_50", "steps_80", "hours_80", "best_flag_rate", "best_model", "nodes")
"""The table's columns: agent steps and wall hours done; the first training flag
(metrics.csv); steps and hours to the first kept model with >= 50% and >= 80% flags on
the harness's seeds; the best kept model by flag rate (then mean x_pos; the earliest of
equals); and the Ray nodes its attempts ran on, in order (a node lost mid-trial shows
as two)."""
FILES = ("results.csv", "results.json", "results.md")
FINISHED = ("done", "solved")
"""The statuses of a trial that needs no more training: at its steps, or ended early by
runner.stop_when_solved. Any other ends the campaign with exit 1."""


def _h(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 3)


def _nodes(campaign_dir: Path, name: str) -> list[str]:
    path = campaign_dir / LOG_DIR / f"{name}.attempts.jsonl"
    nodes: list[str] = []
    if path.exists():
        for line in path.read_text().splitlines():
            node = json.loads(line)["node"]
            if not nodes or nodes[-1] != node:
                nodes.append(node)
    return nodes


def trial_row(campaign_dir: Path, trial: Trial, episodes: int, result: dict[str, Any] | None) -> dict[str, Any]:
    """The table's row of ``trial`` (see :data:`COLUMNS`)."""
    run_dir = campaign_dir / trial.name
    row: dict[str, Any] = {"trial": trial.name, "stage": trial.stage, "seed": trial.seed,
                           "overrides": " ".join(trial.overrides)}
    row.update({key: None for key in COLUMNS if key not in row})
    latest = ckpt.latest_checkpoint(RD.checkpoints_dir(run_dir))
    state = ckpt.read_state(latest / "state.json") if latest is not None else {}
    row["steps"], row["wall_h"] = state.get("step", 0), _h(state.get("wall_s"))
    if result is not None and (result.get("error") or result.get("code") not in (0, None)) \
            and not result.get("stopped_by"):
        row["status"] = "failed"
    elif row["steps"] >= trial.steps:
        row["status"] = "done"
    elif RD.ended_solved(run_dir):
        row["status"] = "solved"
    else:
        row["status"] = "stopped" if row["steps"] else "not started"
    flag = first_training_flag(run_dir)
    if flag is not None:
        row["first_flag_step"], row["first_flag_h"] = flag[0], _h(flag[1])
    if episodes > 0 and RD.config_path(run_dir).exists():
        rows = measured_rows(run_dir, trial.stage, episodes)
        for mark in MARKS:
            hit = first_at(rows, mark)
            if hit is not None:
                row[f"steps_{mark * 100:.0f}"], row[f"hours_{mark * 100:.0f}"] = hit["step"], _h(hit["wall_s"])
        if rows:
            best = max(rows, key=lambda r: (r["flag_rate"], r["mean_x_pos"], -r["step"]))
            row["best_flag_rate"] = best["flag_rate"]
            row["best_model"] = str(Path(best["weights"]).relative_to(campaign_dir))
    if row["best_model"] is None and (RD.checkpoints_dir(run_dir) / "best").is_dir():
        row["best_model"] = f"{trial.name}/{RD.CHECKPOINTS_DIR}/best"  # the run's own pick, by evaluation return
    row["nodes"] = " ".join(node[:8] for node in _nodes(campaign_dir, trial.name))
    return row


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value) or "-"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row[key]) for key in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_table(campaign_dir: Path, plan: Plan, results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Read every trial's row, write the three files (each whole or not at all), return the rows."""
    rows = [trial_row(campaign_dir, trial, plan.solve_episodes, results.get(trial.name)) for trial in plan.trials]
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    for name, content in zip(FILES, (text.getvalue(), json.dumps(rows, indent=1), markdown(rows))):
        tmp = campaign_dir / f"{name}.tmp"
        tmp.write_text(content)
        tmp.replace(campaign_dir / name)
    return rows
