"""scripts/stage_table.py: README's stage table is the one the shipped agents' records give,
and its cells are what hand-made records say (no TensorFlow: JSON and text only)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "stage_table.py"
_spec = importlib.util.spec_from_file_location("stage_table", SCRIPT)
table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(table)


def test_readme_s_stage_table_is_the_one_the_shipped_records_give():
    """A shipped agent added or re-measured without `make table` fails here."""
    readme = (ROOT / "README.md").read_text()
    block = table.render()
    assert block in readme, "README's stage table is stale: run `make table`"
    assert table.replace_block(readme, block) == readme
    rows = _rows(block)
    assert list(rows)[:4] == ["1-1", "1-2", "1-3", "1-4"]
    assert sorted(set(rows) & set(table.STAGES)) == sorted(table.STAGES)  # every stage of Worlds 1-4, shipped or not
    for agent in sorted((ROOT / "save" / "pretrained").glob("world-?-?")):  # each shipped stage shows its agent
        assert f"`save/pretrained/{agent.name}`" in rows[agent.name.removeprefix("world-")]


def test_every_shipped_agent_has_each_flag_figure_of_its_row():
    """An agent packaged before a check existed (or by hand) would show '-' in the table."""
    shipped = ROOT / "save" / "pretrained"
    for agent in sorted(shipped.glob("world-?-?")):
        checks = table.agent_checks(agent)
        assert all(checks[name]["flag_rate"] is not None for name, _ in table.FLAG_CHECKS), agent.name
        assert "reproduce" in json.loads((agent / "training.json").read_text()), agent.name
    for agent in sorted([*shipped.glob("world-?"), *shipped.glob("worlds-*")]):
        for stage, checks in json.loads((agent / "stages.json").read_text()).items():
            assert all(checks[name]["flag_rate"] is not None for name, _ in table.FLAG_CHECKS), (agent.name, stage)


def _write(folder: Path, name: str, record: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(record))


def _check(flag_rate: float) -> dict:
    return {"command": "python main.py evaluate ...", "episodes": 20, "flag_rate": flag_rate}


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A one-stage agent of 2-1 (below the epsilon bar), an agent of World 3's 3-1 and 3-2
    (3-2 below the greedy bar on seeds 1000-1019), and a note for 4-4."""
    shipped = tmp_path / "pretrained"
    agent = shipped / "world-2-1"
    _write(agent, "training.json", {"run": "w21-s0", "step": 1_250_000, "training_wall_hours": 2.5,
                                    "first_flag": {"step": 70_228, "episode": 500, "wall_hours": 0.15},
                                    "to_80": {"step": 900_000, "wall_hours": 1.8, "source": "w21-s0"},
                                    "reproduce": "python main.py train --preset any-stage --world 2 --stage 1"})
    _write(agent, "results.json", {"flag_rate": 0.95, "per_episode": []})
    _write(agent, "robustness.json", {"other_seeds_greedy": _check(0.8), "epsilon_0.05": _check(0.6),
                                      "epsilon_0.05_held_out": _check(0.45)})
    world = shipped / "world-3"
    _write(world, "training.json", {"run": "w3d", "distilled_from": {}, "distillation_wall_hours": 0.5,
                                    "teacher_training_wall_hours": {"3-1": 1.25, "3-2": None, "3-3": 2.0},
                                    "reproduce": ["a", "b"]})
    _write(world, "stages.json", {"3-2": {"seeds_0_19": _check(0.9), "other_seeds_greedy": _check(0.75),
                                          "epsilon_0.05_held_out": _check(0.5)},
                                  "3-1": {"seeds_0_19": _check(1.0), "other_seeds_greedy": _check(1.0)}})
    worlds = shipped / "worlds-2-3"
    _write(worlds, "training.json", {"run": "w23d", "distilled_from": {}, "distillation_wall_hours": 1.0,
                                     "teacher_training_wall_hours": {"2-1": 2.5, "3-1": 1.25}, "reproduce": "c"})
    _write(worlds, "stages.json", {"3-1": {"seeds_0_19": _check(0.6), "other_seeds_greedy": _check(0.55),
                                           "epsilon_0.05_held_out": _check(0.25)},
                                   "2-1": {"seeds_0_19": _check(0.85), "other_seeds_greedy": _check(0.9),
                                           "epsilon_0.05_held_out": _check(0.5)}})
    _write(shipped, table.STATUS, {"4-4": "in training: run w44-any-s0"})
    return shipped


def _rows(block: str) -> dict[str, str]:
    return {line.split(" | ")[0].removeprefix("| "): line for line in block.splitlines()
            if line.startswith("| ") and not line.startswith(("| stage", "| ---"))}


def test_rows_read_the_records_and_mark_what_is_below_the_bar(shipped):
    rows = _rows(table.render(shipped))
    assert len(rows) == 18  # 16 stages, World 3's agent and the agent of Worlds 2-3
    assert rows["2-1"] == ("| 2-1 | `save/pretrained/world-2-1` | 70k, 0.15 h | 900k, 1.80 h (shipped: 1.25M, 2.50 h) "
                           "| 95% / 80% / 45%✗ | `python main.py train --preset any-stage --world 2 --stage 1` |")
    # World 3's agent: its own row after 3-4, per stage in the order of the stages; 1.25 + 2.0 h of teachers
    assert rows["3-1 / 3-2"] == ("| 3-1 / 3-2 | `save/pretrained/world-3` | - | distilled in 0.50 h from agents of "
                                 "3.25 h of training | 100%, 90% / 100%, 75%✗ / -, 50% | the 2 commands of "
                                 "`reproduce` in `save/pretrained/world-3/training.json` |")
    assert list(rows).index("3-1 / 3-2") == list(rows).index("3-4") + 1
    # a stage without its own agent: its world's agent's figures on it
    assert rows["3-2"] == "| 3-2 | `save/pretrained/world-3` (row below) | - | - | 90% / 75%✗ / 50% | - |"
    assert rows["3-3"] == "| 3-3 | not trained yet | - | - | - | - |"  # not in world-3's stages.json
    assert rows["4-4"] == "| 4-4 | in training: run w44-any-s0 | - | - | - | - |"
    assert rows["1-1"] == "| 1-1 | not trained yet | - | - | - | - |"
    # an agent of several worlds: its row after every stage's; a stage's own agent still shows on that stage
    assert list(rows)[-1] == "2-1 / 3-1"
    assert rows["2-1 / 3-1"].startswith("| 2-1 / 3-1 | `save/pretrained/worlds-2-3` | - | distilled in 1.00 h ")
    assert "| 85%, 60%✗ / 90%, 55%✗ / 50%, 25%✗ |" in rows["2-1 / 3-1"]
    assert rows["2-1"].startswith("| 2-1 | `save/pretrained/world-2-1` |")


def test_a_record_without_the_80_figure_says_so():
    assert table.to_80_cell({"step": 100}) == "not measured"
    assert table.to_80_cell({"step": 450_000, "training_wall_hours": 1.0,
                             "to_80": {"step": 450_000, "wall_hours": 1.87, "note": "a slower VM"}}) == \
        "450k, 1.87 h (a slower VM)"
    assert table.first_flag_cell({"first_flag": None}) == "none"
    over = {"step": 500_000, "training_wall_hours": 2.5, "first_flag": {"step": 343_324, "wall_hours": 1.8},
            "to_80": {"step": 450_000, "wall_hours": 2.25},
            "started_over": {"action_set": "simple", "steps_before": 1_664, "wall_s_before": 36.0}}
    assert table.first_flag_cell(over) == "345k, 1.81 h"  # the attempt before starting over counts
    assert table.to_80_cell(over) == ("452k, 2.26 h (shipped: 502k, 2.51 h; with the 1,664 steps before the run "
                                      "started over with simple's actions)")
    assert table.steps(2_000_000) == "2M" and table.steps(125_000) == "125k"
    assert table.rate(0.8, 0.8) == "80%" and table.rate(0.75, 0.8) == "75%✗" and table.rate(None, 0.8) == "-"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_check_exits_1_on_a_stale_table_and_writing_fixes_it(shipped, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{table.BEGIN}\n| an old hand-typed row |\n{table.END}\n\nafter\n")
    where = ("--readme", str(readme), "--shipped", str(shipped))
    stale = _cli("--check", *where)
    assert stale.returncode == 1 and "stage table differs" in stale.stderr and len(stale.stderr.splitlines()) == 1
    assert "an old hand-typed row" in readme.read_text()  # --check writes nothing
    assert _cli(*where).returncode == 0
    text = readme.read_text()
    assert text.startswith("# title\n\n") and text.endswith("\n\nafter\n") and "old hand-typed" not in text
    assert table.render(shipped) in text
    assert _cli("--check", *where).returncode == 0
    readme.write_text("no markers\n")
    missing = _cli("--check", *where)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")


def test_the_script_imports_without_tensorflow():
    done = subprocess.run([sys.executable, "-c", f"import runpy, sys; runpy.run_path({str(SCRIPT)!r}); "
                           "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                           "('tensorflow', 'keras', 'numpy', 'mario_dqn')))"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]
