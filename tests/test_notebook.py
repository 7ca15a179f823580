"""The notebook runs top to bottom in a fresh kernel (with a tiny training run)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "mario_dqn.ipynb"


def test_notebook_runs_without_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("MARIO_DQN_NB_STEPS", "300")
    monkeypatch.setenv("MARIO_DQN_NB_RUNS", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), \
        "store the notebook without outputs"
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    assert (tmp_path / "demo" / "metrics.csv").is_file()
    videos = list((tmp_path / "demo" / "videos").glob("notebook-*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
    texts = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert "bytes per transition" in texts and "parameters:" in texts
