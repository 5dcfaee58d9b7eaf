"""Why patches: the cost of self-attention on pixels (the slide before "16×16 words").

For an H×W image and patch size p: tokens, attention-matrix entries and fp32 memory per head and
per layer, when every pixel is a token and when every p×p patch is (Dosovitskiy et al., 2021).
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmlab.errors import LabError
from vlmlab.vit import whole_number

MAX_SIDE = 100_000


@dataclass(frozen=True)
class PatchCost:
    """Self-attention on pixels vs on patches, per head and per layer."""

    height: int
    width: int
    patch_size: int
    grid: tuple[int, int]  # whole patches (rows, cols); pixels past the last patch are dropped
    pixel_tokens: int  # every pixel a token: H·W
    patch_tokens: int  # (H/p)·(W/p), without the CLS token
    bytes_per_entry: int = 4  # fp32

    @property
    def pixel_entries(self) -> int:
        return self.pixel_tokens**2

    @property
    def patch_entries(self) -> int:
        return self.patch_tokens**2

    @property
    def pixel_bytes(self) -> int:
        return self.pixel_entries * self.bytes_per_entry

    @property
    def patch_bytes(self) -> int:
        return self.patch_entries * self.bytes_per_entry

    @property
    def saving(self) -> float:
        """How many times smaller the patch attention matrix is (p⁴ when the sides divide)."""
        return self.pixel_entries / self.patch_entries


def patch_cost(height, width, patch_size) -> PatchCost:
    """Tokens, attention entries and fp32 memory for an H×W image, pixels vs p×p patches."""
    height, width = whole_number(height, "height"), whole_number(width, "width")
    patch = whole_number(patch_size, "patch size")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise LabError(f"The image sides must be between 1 and {MAX_SIDE:,} pixels.")
    if not 1 <= patch <= min(height, width):
        raise LabError(
            f"The patch size must be between 1 and {min(height, width)} (the shorter side)."
        )
    grid = (height // patch, width // patch)
    return PatchCost(height, width, patch, grid, height * width, grid[0] * grid[1])


def patch_cost_rows(cost: PatchCost) -> list[list[str]]:
    """The calculator as a small table: header, then pixels and patches."""
    p = cost.patch_size
    return [
        [
            "",
            "tokens",
            "attention entries (per head, per layer)",
            "fp32 memory (per head, per layer)",
        ],
        [
            "every pixel a token",
            f"{cost.pixel_tokens:,}",
            f"{cost.pixel_entries:,}",
            format_bytes(cost.pixel_bytes),
        ],
        [
            f"{p}×{p} patches",
            f"{cost.patch_tokens:,}",
            f"{cost.patch_entries:,}",
            format_bytes(cost.patch_bytes),
        ],
    ]


def describe_patch_cost(cost: PatchCost) -> str:
    rows, cols = cost.grid
    p = cost.patch_size
    text = (
        f"A {cost.height}×{cost.width} image has {cost.pixel_tokens:,} pixels; as {p}×{p} patches "
        f"it is a {rows}×{cols} grid of {cost.patch_tokens:,} tokens, "
        f"so each attention matrix is {cost.saving:,.0f}× smaller."
    )
    dropped = cost.height * cost.width - cost.patch_tokens * cost.patch_size**2
    if dropped:
        text += f" ({dropped:,} pixels past the last whole patch would be resized or cropped away.)"
    return text


def format_bytes(n: float) -> str:
    """Bytes in decimal units, 3 significant figures: 10,070,523,904 → "10.1 GB"."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000 or unit == "EB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    raise AssertionError  # unreachable
