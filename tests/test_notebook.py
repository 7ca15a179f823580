"""The notebook reads without running and runs top to bottom.

It is stored with its outputs (the figures and tables of its small real run: a reader on a
code forge sees them without a kernel), small enough to keep in the repository; and a copy
without them runs in a fresh kernel, with a tiny training run, and draws the same figures.
The kernel starts in the repository root and the notebook edits no sys.path: it imports
the project as installed (or, in a checkout not installed, from that working directory).
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "mario_dqn.ipynb"
FIGURES = 4
"""Cells that draw a figure: the preprocessing stages, the learning curves, frames of the
recorded episode and the agent's view."""


def _images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


def _texts(nb) -> str:
    return "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))


def test_the_notebook_is_stored_with_its_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), "stored after running every cell"
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert _images(nb) >= FIGURES, "the figures are stored as PNG"
    texts = _texts(nb)
    assert "bytes per transition" in texts and "parameters:" in texts and "x_pos" in texts
    assert NOTEBOOK.stat().st_size < 1_500_000, "keep the stored notebook small"
    assert not any("sys.path" in cell.source for cell in code), "the notebook imports the installed project"


def test_notebook_runs_without_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("MARIO_DQN_NB_STEPS", "300")
    monkeypatch.setenv("MARIO_DQN_NB_RUNS", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:  # a fresh run: nothing of the stored one is left to pass for it
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    assert _images(nb) == 0
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    assert (tmp_path / "demo" / "metrics.csv").is_file()
    videos = list((tmp_path / "demo" / "videos").glob("notebook-*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
    texts = _texts(nb)
    assert "bytes per transition" in texts and "parameters:" in texts
    assert _images(nb) >= FIGURES, "every figure is drawn"
