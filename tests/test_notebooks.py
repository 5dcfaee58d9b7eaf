"""Every notebook runs start to end, headless, with the tiny offline models."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_lecture_has_its_notebooks():
    names = [path.name for path in NOTEBOOKS]
    assert names == sorted(names) and names, "notebooks/ should hold the lecture's notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_start_to_end(path):
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "commit notebooks without outputs"
    )
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": path.parent}}
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    setup = next(cell for cell in notebook.cells if cell.cell_type == "code")
    said = "".join(output.get("text", "") for output in setup.outputs)
    assert "models run on" in said, "the first cell says where the models will run"
