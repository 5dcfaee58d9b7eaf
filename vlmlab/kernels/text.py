"""Kernel text, parsed as numbers and never evaluated: one row per line, a blank line between
channels, numpy/torch brackets and fractions understood; and what makes a kernel valid.
"""

from __future__ import annotations

import re

import numpy as np

from vlmlab.errors import LabError
from vlmlab.text import clean_text


class KernelError(LabError):
    """A kernel, padding or stride the lab cannot use, with one sentence saying what to do."""


MAX_KERNEL = 15  # the largest kernel side
MAX_VALUE = 1e6  # the largest magnitude of a kernel value
MAX_CHANNELS = 16  # blocks in one multi-channel kernel
MAX_KERNEL_CHARS = 100_000  # enough to paste a 101×101 grid and be told it is too big


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_FRACTION = re.compile(rf"({_NUMBER.pattern})/({_NUMBER.pattern})")
_SEPARATORS = re.compile(r"[\s,;]+")
_NOT_FINITE = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)
_WRAPPER = re.compile(  # array([[…]], dtype=float32) / tensor([[…]], requires_grad=True)
    r"^\s*[A-Za-z_][\w.]*\(\s*(.*?)\s*(?:,\s*\w+\s*=\s*[\w.'\"]+\s*)*\)\s*$", re.DOTALL
)


def parse_kernel(text: str) -> np.ndarray:
    """Kernel text → (k, k) float64, or (C, k, k) for C blocks separated by a blank line.

    One kernel row per line, numbers separated by spaces, commas or semicolons; fractions
    like 1/9 and pasted numpy/torch brackets (`[[1, 0], [0, 1]]`) are understood. Anything
    else raises `KernelError` with one sentence.
    """
    text = clean_text(text, what="kernel").replace("−", "-")  # U+2212, pasted from slides
    if len(text) > MAX_KERNEL_CHARS:
        raise KernelError("The kernel text is too long; a kernel has at most 15×15 numbers.")
    blocks = _bracket_blocks(text) if "[" in text else _line_blocks(text)
    if not blocks or not any(blocks):
        raise KernelError("The kernel is empty: type its numbers, one row per line.")
    if len(blocks) > MAX_CHANNELS:
        raise KernelError(f"A kernel may have at most {MAX_CHANNELS} channels (blocks).")
    arrays = [_block_to_array(rows, i, len(blocks)) for i, rows in enumerate(blocks)]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        sizes = ", ".join(f"channel {i + 1} is {_size(a.shape)}" for i, a in enumerate(arrays))
        raise KernelError(f"Every channel of a kernel must be the same size: {sizes}.")
    kernel = arrays[0] if len(arrays) == 1 else np.stack(arrays)
    return check_kernel(kernel)


def format_kernel(kernel: np.ndarray) -> str:
    """The inverse of `parse_kernel`: compact numbers, one row per line, blank line per channel."""
    array = np.asarray(kernel, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise KernelError("A kernel must be k×k or C×k×k.")
    cells = [[[_compact(v) for v in row] for row in block] for block in array]
    width = max((len(c) for block in cells for row in block for c in row), default=1)
    return "\n\n".join(
        "\n".join(" ".join(c.rjust(width) for c in row) for row in block) for block in cells
    )


def _compact(value: float) -> str:
    text = f"{value:.6g}"
    return "0" if text in ("-0", "0") else text


def _line_blocks(text: str) -> list[list[list[str]]]:
    blocks: list[list[list[str]]] = [[]]
    for line in text.splitlines():
        cells = [c for c in _SEPARATORS.split(line.strip()) if c]
        if cells:
            blocks[-1].append(cells)
        elif blocks[-1]:
            blocks.append([])  # a blank line ends a channel
    return [b for b in blocks if b]


def _bracket_blocks(text: str) -> list[list[list[str]]]:
    """Nested brackets, as numpy, torch or Python print them, → blocks of rows of cells."""
    match = _WRAPPER.match(text)  # array([[...]]) / tensor([[...]], dtype=...)
    if match:
        text = match.group(1)
    stack: list[list] = [[]]
    for token in re.findall(r"\[|\]|[^\[\]\s,;]+", text):
        if token == "[":
            stack.append([])
        elif token == "]":
            if len(stack) == 1:
                raise KernelError("The kernel's brackets do not match: there is an extra ']'.")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(token)
    if len(stack) != 1:
        raise KernelError("The kernel's brackets do not match: a '[' is never closed.")
    tree = stack[0]
    while len(tree) == 1 and isinstance(tree[0], list) and _depth(tree[0]) >= 2:
        tree = tree[0]  # unwrap [[[...]]] down to rows or blocks
    depth = _depth(tree)
    if depth == 1:  # a single bracketed row, or loose numbers: one row
        return [[[str(c) for c in _flatten(tree)]]]
    if depth == 2:
        return [[_row_cells(row) for row in tree]]
    if depth == 3:
        return [[_row_cells(row) for row in block] for block in tree if isinstance(block, list)]
    raise KernelError("A kernel must be k×k or C×k×k; these brackets nest too deep.")


def _depth(node) -> int:
    if not isinstance(node, list):
        return 0
    return 1 + max((_depth(n) for n in node), default=0)


def _flatten(node) -> list:
    return [x for n in node for x in _flatten(n)] if isinstance(node, list) else [node]


def _row_cells(row) -> list[str]:
    if not isinstance(row, list) or any(isinstance(c, list) for c in row):
        raise KernelError("The kernel's brackets are uneven: write one [ … ] per row.")
    return [str(c) for c in row]


def _block_to_array(rows: list[list[str]], block: int, blocks: int) -> np.ndarray:
    where = f"channel {block + 1}, " if blocks > 1 else ""
    lengths = [len(r) for r in rows]
    if len(set(lengths)) > 1:
        first, bad = lengths[0], next(i for i, n in enumerate(lengths) if n != lengths[0])
        raise KernelError(
            f"Every row of the kernel needs the same number of values, but {where}row 1 has "
            f"{first} and row {bad + 1} has {lengths[bad]}."
        )
    # Before converting 10,000 cells of a pasted 101×101 grid:
    _check_shape(
        (len(rows), lengths[0]), f"channel {block + 1} is" if blocks > 1 else "this one is"
    )
    values = np.empty((len(rows), lengths[0]), dtype=np.float64)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            values[i, j] = _number(cell, f"{where}row {i + 1}, column {j + 1}")
    return values


def _number(cell: str, where: str) -> float:
    """One cell as a float: a decimal or a fraction like 1/9; never evaluated."""
    fraction = _FRACTION.fullmatch(cell)
    if fraction:
        top, bottom = float(fraction.group(1)), float(fraction.group(2))
        if bottom == 0:
            raise KernelError(f"The kernel value at {where} divides by zero ({cell}).")
        value = top / bottom
    elif _NUMBER.fullmatch(cell):
        value = float(cell)
    elif _NOT_FINITE.fullmatch(cell):
        raise KernelError(
            f"The kernel value at {where} is {cell}; kernel values must be ordinary finite numbers."
        )
    else:
        shown = cell if len(cell) <= 20 else cell[:20] + "…"
        raise KernelError(f"The kernel value at {where}, {shown!r}, is not a number.")
    if not np.isfinite(value) or abs(value) > MAX_VALUE:
        raise KernelError(
            f"The kernel value at {where} ({cell}) is too large; "
            f"keep kernel values between -1,000,000 and 1,000,000."
        )
    return value


def cells_to_array(cells, *, what: str = "kernel", max_side: int = MAX_KERNEL) -> np.ndarray:
    """A grid of cells (rows of strings or numbers, as an editable table gives them) → float64."""
    rows = [["" if c is None else str(c).strip() for c in row] for row in (cells or [])]
    rows = [row for row in rows if row]
    if not rows or all(not c for row in rows for c in row):
        raise KernelError(f"The {what} grid is empty: type a number in every cell.")
    if len(rows) > max_side or max(len(r) for r in rows) > max_side:
        raise KernelError(f"The {what} grid may be at most {max_side}×{max_side}.")
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            if not cell:
                raise KernelError(
                    f"Row {i + 1}, column {j + 1} of the {what} grid is empty; type a number (0 for "
                    "nothing)."
                )
    if what == "kernel":
        return check_kernel(_block_to_array(rows, 0, 1))
    return _block_to_array(rows, 0, 1)


def parse_numbers(text: str, *, what: str, max_count: int) -> np.ndarray:
    """A flat list of numbers (e.g. a layer's biases), separated by spaces, commas or semicolons."""
    text = clean_text(text, what=what).replace("−", "-").strip("[]() ")
    cells = [c for c in _SEPARATORS.split(text) if c]
    if len(cells) > max_count:
        raise KernelError(f"Please give at most {max_count} {what} values; you gave {len(cells)}.")
    return np.array([_number(c, f"{what} value {i + 1}") for i, c in enumerate(cells)])


def check_kernel(kernel) -> np.ndarray:
    """`kernel` as float64 (k, k) or (C, k, k), square, odd, ≤ 15, finite, |values| ≤ 1e6."""
    try:
        array = np.asarray(kernel, dtype=np.float64)
    except (TypeError, ValueError):
        raise KernelError("The kernel must be a grid of numbers, one row per line.") from None
    if array.size == 0:
        raise KernelError("The kernel is empty: type its numbers, one row per line.")
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim not in (2, 3):
        raise KernelError("A kernel must be a k×k grid, or C blocks of k×k for C channels.")
    if array.ndim == 3 and array.shape[0] > MAX_CHANNELS:
        raise KernelError(f"A kernel may have at most {MAX_CHANNELS} channels (blocks).")
    _check_shape(array.shape[-2:])
    if not np.isfinite(array).all():
        raise KernelError("The kernel contains NaN or infinity; use ordinary finite numbers.")
    if np.abs(array).max() > MAX_VALUE:
        raise KernelError("Kernel values must lie between -1,000,000 and 1,000,000.")
    return array


def _check_shape(shape: tuple[int, int], which: str = "this one is") -> None:
    rows, cols = shape
    if rows != cols or rows % 2 == 0:
        raise KernelError(
            f"The kernel must be square with an odd size, like 3×3 or 5×5; {which} "
            f"{_size((rows, cols))}."
        )
    if rows > MAX_KERNEL:
        raise KernelError(
            f"The kernel is {_size((rows, cols))}; the largest the lab takes is "
            f"{MAX_KERNEL}×{MAX_KERNEL}."
        )


def _size(shape) -> str:
    return "×".join(str(n) for n in shape)
