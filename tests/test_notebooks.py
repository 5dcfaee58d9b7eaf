"""Every notebook runs start to end, headless, with the tiny offline models; and with no model at
all, each model cell shows the sentence that says how to get one, and the notebook goes on."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# The notebooks whose cells run pretrained models (the others build or train their own).
MODEL_NOTEBOOKS = [p for p in NOTEBOOKS if p.stem.startswith(("03", "04", "05", "06"))]
MISSING = "is not on this machine"  # the engine's sentence for a model that cannot be had
NO_MODEL_WIDGETS = ("WhyPatches(",)  # widgets of the model notebooks that need no model


def _run(path: Path):
    """Execute `path` start to end in a fresh kernel; return the executed notebook."""
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
    return notebook


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _widget_texts(notebook, cell) -> list[str]:
    """The text of every widget a cell displayed, each with the widgets inside it, read from the
    widget state nbclient saves with the notebook (what a front end would draw)."""
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]

    def text(model_id: str) -> str:
        values = state[model_id]["state"]
        found = [str(values.get("value", ""))]
        for child in values.get("children", ()):
            found.append(text(child.removeprefix("IPY_MODEL_")))
        return "\n".join(found)

    return [
        text(output["data"][WIDGET_VIEW]["model_id"])
        for output in cell.outputs
        if WIDGET_VIEW in output.get("data", {})
    ]


def test_the_lecture_has_its_notebooks():
    names = [path.name for path in NOTEBOOKS]
    assert names == sorted(names) and names, "notebooks/ should hold the lecture's notebooks"
    assert len(MODEL_NOTEBOOKS) == 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_start_to_end(path):
    notebook = _run(path)
    setup = next(cell for cell in notebook.cells if cell.cell_type == "code")
    said = "".join(output.get("text", "") for output in setup.outputs)
    assert "models run on" in said, "the first cell says where the models will run"


@pytest.mark.parametrize("path", MODEL_NOTEBOOKS, ids=[p.stem for p in MODEL_NOTEBOOKS])
def test_a_notebook_without_its_models_says_so_in_each_model_cell_and_runs_on(
    path, tmp_path, monkeypatch
):
    """Empty caches, offline: no model at all (the kernel inherits this environment)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    notebook = _run(path)  # to the end, no error
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    guarded = [cell for cell in cells if "if ready(" in cell.source]
    assert guarded, "model cells that call the engine directly start with `if ready(MODEL):`"
    for cell in guarded:  # the sentence, in a widget, and the cell's work skipped
        assert any(MISSING in text for text in _widget_texts(notebook, cell)), cell.source
    shown = [cell for cell in cells if _widget_texts(notebook, cell)]
    assert len(shown) > len(guarded)
    for cell in shown:  # every widget shown says it, but the one that needs no model
        if not cell.source.startswith(NO_MODEL_WIDGETS):
            assert any(MISSING in text for text in _widget_texts(notebook, cell)), cell.source
