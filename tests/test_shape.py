"""The shape every topic keeps: each topic is a sub-package `vlmlab/<topic>/` whose `__init__` is
its front door; compute modules return data and never draw; drawing lives in
`vlmlab/<topic>/render.py` (or `…_render.py` beside the compute it draws) and `vlmlab/render.py`. Read from the source with
`ast`, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[1] / "vlmlab"
# Command lines (`python -m …`) are faces of the lab, like demo/ and widgets/: the atlas command
# (vlmlab/cnn/atlas/__main__.py) draws the grid that vlmlab.cnn.atlas computes.
FACES = {"__main__"}
MARKUP = re.compile(r"<(b|i|p|a|br|div|span|ul|ol|li|table|tr|td|th|h[1-6])[\s>/]|\*\*\S")


def module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_render(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last == "render" or last.endswith("_render")


def compute_modules() -> list[Path]:
    return [
        path
        for path in sorted(ENGINE.rglob("*.py"))
        if not is_render(module_name(path)) and path.stem not in FACES
    ]


def imported(tree: ast.AST, module: str, package: bool = False) -> set[str]:
    """Every module an `import` or `from … import` names, submodules of `from x import y`
    included (y may be a module)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from .x import y
                parts = module.split(".")[: len(module.split(".")) - node.level + package]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def test_the_engine_has_compute_and_render_modules():
    compute = {module_name(p) for p in compute_modules()}
    assert {"vlmlab.cnn", "vlmlab.cnn.gradcam", "vlmlab.pixels", "vlmlab.vqa"} <= compute
    assert {"vlmlab.cnn.atlas", "vlmlab.links", "vlmlab.lecture"} <= compute
    assert not {"vlmlab.cnn.render", "vlmlab.render", "vlmlab.lecture.render"} & compute


TOPICS = ("pixels", "kernels", "cnn", "vit", "clip", "contrastive", "captioning", "vqa", "lecture")


def test_every_topic_is_a_sub_package_with_its_front_door_and_its_renderer():
    for topic in TOPICS:
        folder = ENGINE / topic
        assert (folder / "__init__.py").is_file() and (folder / "render.py").is_file(), topic
        assert not (ENGINE / f"{topic}.py").exists(), f"vlmlab/{topic}.py beside vlmlab/{topic}/"
    flat = sorted(p.name for p in ENGINE.glob("*_render.py"))
    assert flat == [], f"renderers outside their topic's package: {flat}"
    # the lab's own modules beside the topics: shared infrastructure, no topic's prefix
    strays = sorted(p.name for p in ENGINE.glob("*.py") if p.stem.split("_")[0] in TOPICS)
    assert strays == [], f"{strays} belong in their topic's package"


@pytest.mark.parametrize("path", compute_modules(), ids=module_name)
def test_compute_never_imports_a_render_module(path):
    name = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = imported(tree, name, package=path.stem == "__init__")
    drawing = sorted(n for n in names if n.startswith("vlmlab") and is_render(n))
    assert drawing == [], f"{name} imports {drawing}: drawing belongs in its _render module"


@pytest.mark.parametrize("path", compute_modules(), ids=module_name)
def test_compute_never_writes_markup(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert "html" not in imported(tree, module_name(path), package=path.stem == "__init__")
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    markup = [
        node.value[:60]
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings and MARKUP.search(node.value)
    ]  # fmt: skip
    assert markup == [], f"{module_name(path)} writes markup: {markup}"


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The two checks above fail on a module that draws or writes markup."""
    bad = ast.parse(
        "from vlmlab.cnn import render\nfrom . import featurevis_render\n"
        "def f():\n    from vlmlab.render import colorize\n    return '<b>' + '**x**'\n"
    )
    inside = {n for n in imported(bad, "vlmlab.cnn.gradcam") if is_render(n)}
    assert {"vlmlab.cnn.render", "vlmlab.cnn.featurevis_render", "vlmlab.render"} <= inside
    front_door = {n for n in imported(bad, "vlmlab.cnn", package=True) if is_render(n)}
    assert "vlmlab.cnn.featurevis_render" in front_door  # `from .` in an __init__ is the package
    strings = [n.value for n in ast.walk(bad) if isinstance(n, ast.Constant)]
    assert all(MARKUP.search(s) for s in strings if isinstance(s, str))


# ---------------------------------------------------------------------------------------------
# One place for checks (vlmlab.checks) and settings that travel together (kernels.Convolution)


def test_whole_numbers_in_a_range():
    import numpy as np

    from vlmlab.checks import whole_number
    from vlmlab.errors import LabError
    from vlmlab.kernels import KernelError

    for good in (3, 3.0, np.int64(3), np.float32(3)):
        assert whole_number(good, "stride", 1, 8) == 3 and type(whole_number(good, "s")) is int
    assert whole_number(" 3 ", "layer", text=True) == 3
    for bad in (True, np.bool_(True), 2.5, float("nan"), float("inf"), 10**400, "3", None, 0, 9):
        with pytest.raises(LabError, match=r"^The stride must be a whole number from 1 to 8\.$"):
            whole_number(bad, "stride", 1, 8)
    with pytest.raises(LabError, match="of at least 1"):
        whole_number(0, "stride", 1)
    with pytest.raises(KernelError, match="^Say it so.$"):
        whole_number("x", "stride", text=True, message="Say it so.", error=KernelError)


def test_finite_numbers_flags_and_choices():
    import numpy as np

    from vlmlab.checks import choice, finite_number, flag
    from vlmlab.errors import LabError

    assert finite_number(np.float32(0.5), "top-p", 0, 1) == 0.5
    assert finite_number(" 0.25 ", "strength", text=True) == 0.25
    for bad in (float("nan"), -0.1, 1.5, True, "0.5", None):
        with pytest.raises(LabError, match=r"^The top-p must be a number from 0 to 1\.$"):
            finite_number(bad, "top-p", 0, 1)
    with pytest.raises(LabError, match=r"^The temperature must be a number\.$"):
        finite_number(float("inf"), "temperature")
    assert flag(np.bool_(True), "flip") is True and flag(False, "flip") is False
    for bad in (1, "yes", None):
        with pytest.raises(LabError, match="flip must be switched on"):
            flag(bad, "flip")
    assert choice("zero", "padding", ("reflect", "zero")) == "zero"
    with pytest.raises(LabError, match=r"^The padding must be one of reflect, zero\.$"):
        choice(["zero"], "padding", ("reflect", "zero"))


def test_convolution_settings_are_checked_once_and_shared():
    import dataclasses

    import numpy as np

    from vlmlab.kernels import Convolution, KernelError, apply_kernel, normalise_kernel
    from vlmlab.kernels.render import render_kernel, render_step
    from vlmlab.kernels.step import explain_pixel

    settings = Convolution("zero", 2.0, flip=True, normalise=True)
    assert settings.stride == 2 and type(settings.stride) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.stride = 3
    for bad, message in [
        ({"padding": "wrap"}, "padding must be one of"),
        ({"stride": 0}, "stride must be a whole number of at least 1"),
        ({"flip": "yes"}, "The flip setting must be true or false"),
        ({"grayscale": 1}, "The grayscale setting must be true or false"),
    ]:
        with pytest.raises(KernelError, match=message):
            Convolution(**bad)
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 9, (7, 7)).astype(np.float64)
    kernel = rng.integers(-2, 5, (3, 3)).astype(np.float64)
    values = apply_kernel(matrix, kernel, settings)
    by_hand = apply_kernel(matrix, normalise_kernel(kernel)[::-1, ::-1], padding="zero", stride=2)
    np.testing.assert_allclose(values, by_hand, rtol=1e-6)
    np.testing.assert_allclose(render_kernel(matrix, kernel, settings).values, values)
    step = explain_pixel(matrix, kernel, 1, 2, settings)
    assert step.flip and step.sums[0] == pytest.approx(values[1, 2], rel=1e-6)
    assert render_step(matrix, kernel, 1, 2, settings)[0].sums[0] == pytest.approx(values[1, 2])
    with pytest.raises(KernelError, match="not both"):
        apply_kernel(matrix, kernel, settings, stride=1)
