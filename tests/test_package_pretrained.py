"""scripts/package_pretrained.py's own arithmetic, against hand-made run records (no
training: the shipped agent's files themselves are checked in tests/test_pretrained.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("package_pretrained", ROOT / "scripts" / "package_pretrained.py")
package = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(package)


def _run(tmp_path: Path, stages: list[str]) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "config.json").write_text(json.dumps({"env": {"stages": stages}}))
    return run


def test_the_default_destination_follows_the_run_s_stages(tmp_path):
    shipped = ROOT / "save" / "pretrained"
    assert package.default_out(_run(tmp_path, ["1-3"])) == shipped / "world-1-3"
    assert package.default_out(_run(tmp_path, ["1-1", "1-2", "1-3", "1-4"])) == shipped / "world-1"
    with pytest.raises(SystemExit, match="several worlds"):
        package.default_out(_run(tmp_path, ["1-1", "2-1"]))


def _episode(step: int, flag: int, wall_s: str, sps: str = "50.0") -> dict[str, str]:
    return {"kind": "episode", "step": str(step), "episode": str(step // 100), "flag": str(flag),
            "steps_per_s": sps, "wall_s": wall_s, "x_pos": "900", "return": "90", "stage": "1-1"}


def test_hours_come_from_wall_s_and_from_steps_per_s_before_it_existed(tmp_path):
    rows = [_episode(1000, 0, "100"), {"kind": "eval", "step": "1000", "wall_s": "120", "stage": "", "x_pos": "700", "return": "70", "flag": ""},
            _episode(2000, 1, "1800"), _episode(3000, 1, "7200")]
    assert package.first_flag(rows) == {"step": 2000, "episode": 20, "wall_hours": 0.5}
    assert package.training_hours(rows) == 2.0
    assert package.flags_from_stage_start(rows) == 2
    restarted = rows + [{**_episode(4000, 1, "7300"), "restart_steps": "250"},
                        {**_episode(5000, 1, "7400"), "restart_steps": "0"}]
    assert package.flags_from_stage_start(restarted) == 3  # the one restarted 250 steps in does not count
    old = [{k: v for k, v in row.items() if k != "wall_s"} for row in rows if row["kind"] == "episode"]
    # 1000 steps at 50/s, then 1000 more, then 1000 more: 60 s in all
    assert package.first_flag(old)["wall_hours"] == round(40 / 3600, 2)
    assert package.training_hours(old) == round(60 / 3600, 2)
    path = tmp_path / "curve.png"
    package.plot_curve(rows, path, ["1-1"])
    assert path.stat().st_size > 10_000
