"""The lab installs under the one name `vlmlab` (vlmlab.demo, vlmlab.widgets), starts as a command,
and its two faces import each other's modules relatively, so the checkout and an install agree."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FACES = ("demo", "widgets")
SOURCES = ("pyproject.toml", "requirements.txt", "README.md", "vlmlab", *FACES)


def _absolute_face_imports(path: Path) -> list[str]:
    """`import demo…` / `from widgets… import` lines: they break once installed as vlmlab.*."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"
            for name in names
            if name.split(".")[0] in FACES
        ]
    return found


def test_the_faces_import_their_own_modules_relatively():
    modules = [path for face in FACES for path in sorted((ROOT / face).rglob("*.py"))]
    assert len(modules) > 10
    found = [line for path in modules for line in _absolute_face_imports(path)]
    assert not found, "use `from .module import …` inside demo/ and widgets/:\n" + "\n".join(found)


def test_notebooks_import_the_widgets_by_their_installed_name():
    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            source = "\n".join(
                line for line in cell.source.splitlines() if not line.lstrip().startswith("%")
            )
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FACES:
                    found.append(f"{path.name}: from {node.module} import …")
    assert not found, "notebooks import `vlmlab.widgets…` (works installed):\n" + "\n".join(found)


COLAB_BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"


def test_badges_and_install_lines_name_the_one_published_repository():
    """pyproject.toml's [project.urls] Repository is the one address; every Colab badge, git-URL
    install line and notebook install cell names it, and every notebook has its badge."""
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"][
        "Repository"
    ]
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+)", repository)
    assert match, f"Repository should be a GitHub address, not {repository!r}"
    slug, git_url = match.group(1), f"git+{repository}.git"
    readme = (ROOT / "README.md").read_text()
    notebooks = sorted(path.name for path in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks

    linked = re.findall(r"\(https://colab\.research\.google\.com/github/([^)\s]+)\)", readme)
    expected = [f"{slug}/blob/main/notebooks/{name}" for name in notebooks]
    assert sorted(linked) == expected, "one Colab badge per notebook, opening the repository"
    assert readme.count(COLAB_BADGE) == len(notebooks)

    installs = re.findall(r"git\+https?://[^\s\"'`)]+", readme)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        setup = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        found = re.findall(r"git\+https?://[^\s\"'`)]+", setup.source)
        assert found == [git_url], f"{path.name}'s first cell should install from {git_url}"
        installs += found
    assert installs and set(installs) == {git_url}, installs


def test_a_checkout_names_the_faces_vlmlab_demo_and_vlmlab_widgets():
    code = (
        "import sys, vlmlab; assert 'ipywidgets' not in sys.modules and 'gradio' not in sys.modules;"
        "import importlib.util, vlmlab.widgets.kernels as k;"
        "print(k.__file__); print(importlib.util.find_spec('vlmlab.demo').origin)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(ROOT / "widgets" / "kernels.py"), str(ROOT / "demo" / "__init__.py")]
    usage = subprocess.run(
        [sys.executable, "-m", "vlmlab", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert usage.returncode == 0 and "Serve vlmlab" in usage.stdout, usage.stderr


def test_the_command_line_offers_the_engines_precisions():
    from vlmlab import cli, device

    assert set(cli.CPU_DTYPES) == set(device.CPU_DTYPES)


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """A new virtual environment that sees the shared one's packages (offline, no downloads) but
    not this checkout: what `pip install` puts in it is all it has of vlmlab."""
    folder = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", folder], check=True)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _copy_sources(target: Path) -> Path:
    target.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / name)
    return target


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python),
         *args],
        capture_output=True,
        text=True,
        check=True,
    )


def test_pip_install_puts_everything_under_vlmlab(fresh_venv, tmp_path):
    source = _copy_sources(tmp_path / "src")  # builds leave build/ and *.egg-info behind
    _pip(fresh_venv, "install", "--quiet", "--no-deps", "--no-build-isolation", str(source))
    shown = _pip(fresh_venv, "show", "-f", "vlmlab").stdout
    files = [line.strip() for line in shown.split("Files:")[1].splitlines() if line.strip()]
    assert any(f == "vlmlab/widgets/kernels.py" for f in files)
    assert any(f == "vlmlab/demo/cnn_tab.py" for f in files)
    engine = Path(__file__).resolve().parents[1] / "vlmlab"
    for module in engine.rglob("*.py"):  # every topic's sub-package installs, not only the top
        assert f"vlmlab/{module.relative_to(engine).as_posix()}" in files, module
    tops = {f.split("/")[0] for f in files if not f.startswith("..")}
    assert {t for t in tops if not t.startswith("vlmlab")} == set(), tops

    elsewhere = tmp_path / "elsewhere"  # no checkout in sight
    elsewhere.mkdir()
    code = (
        "import importlib.util, json, vlmlab.widgets.kernels;"
        "print(json.dumps([vlmlab.widgets.kernels.__file__,"
        " importlib.util.find_spec('vlmlab.demo').origin]))"
    )
    found = subprocess.run(
        [fresh_venv, "-c", code], cwd=elsewhere, capture_output=True, text=True, check=True
    )
    for path in json.loads(found.stdout):
        assert Path(path).is_relative_to(fresh_venv.parent.parent), path
    for absent in FACES:  # nothing with a generic top-level name
        probe = subprocess.run(
            [fresh_venv, "-c", f"import {absent}"], cwd=elsewhere, capture_output=True, text=True
        )
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr
    usage = subprocess.run(
        [fresh_venv.parent / "vlmlab", "--help"], cwd=elsewhere, capture_output=True, text=True
    )
    assert usage.returncode == 0 and "Serve vlmlab" in usage.stdout, usage.stderr


def test_an_editable_install_finds_the_checkouts_folders(fresh_venv, tmp_path):
    source = _copy_sources(tmp_path / "src")
    _pip(fresh_venv, "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(source))
    code = (
        "import importlib.util as u, vlmlab.widgets;"
        "print(u.find_spec('vlmlab.widgets.pixels').origin); print(u.find_spec('vlmlab.demo').origin)"
    )
    found = subprocess.run(
        [fresh_venv, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    assert found == [str(source / "widgets" / "pixels.py"), str(source / "demo" / "__init__.py")]
