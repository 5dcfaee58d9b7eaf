"""vlmlab: an interactive lab for vision-language models, from pixels to VQA.

The engine lives in this package (compute and rendering, no UI imports); `vlmlab.demo` and
`vlmlab.widgets` wire it to Gradio and to Jupyter. In a source checkout those two faces are the
folders `demo/` and `widgets/` beside this package (installed, they are inside it): a finder
added here lets `vlmlab.demo` and `vlmlab.widgets` name them in a checkout too.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from vlmlab.errors import LabError, ModelUnavailableError

__all__ = ["LabError", "ModelUnavailableError"]
__version__ = "0.1.0"

FACES = ("demo", "widgets")  # the Gradio face and the Jupyter face


class _CheckoutFaces:
    """Finds `vlmlab.demo` / `vlmlab.widgets` in the checkout's `demo/` / `widgets/` folders."""

    def __init__(self, root: Path):
        self.root = root

    def find_spec(self, name, path=None, target=None):
        package, _, face = name.partition(".")
        if package != __name__ or face not in FACES:
            return None
        folder = self.root / face
        return importlib.util.spec_from_file_location(
            name, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


def _add_checkout_faces() -> None:
    here = Path(__file__).resolve().parent
    root = here.parent
    installed = all((here / face).is_dir() for face in FACES)
    checkout = (root / "pyproject.toml").is_file() and all(
        (root / face / "__init__.py").is_file() for face in FACES
    )
    if checkout and not installed:
        if not any(isinstance(finder, _CheckoutFaces) for finder in sys.meta_path):
            sys.meta_path.append(_CheckoutFaces(root))


_add_checkout_faces()
