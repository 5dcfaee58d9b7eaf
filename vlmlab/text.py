"""Text a user types (labels, questions, prompts), cleaned and bounded before any model sees it."""

from __future__ import annotations

import re
import unicodedata

from vlmlab.errors import LabError

MAX_TEXT_CHARS = 200_000  # a whole request's text; anything longer is refused outright


def clean_text(text: object, *, what: str = "text") -> str:
    """`text` as a str without control characters (NUL included) and outer spaces."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise LabError(f"The {what} must be text.")
    if len(text) > MAX_TEXT_CHARS:
        raise LabError(f"The {what} is too long ({len(text):,} characters); please shorten it.")
    kept = "".join(
        ch for ch in text if ch in "\n\t" or not unicodedata.category(ch).startswith("C")
    )
    return kept.strip()


def split_items(
    text: object, *, what: str, max_items: int, commas: bool = True, max_chars: int | None = None
) -> list[str]:
    """Items typed one per line (or, with `commas`, comma-separated): stripped, de-duplicated.

    Raises `LabError` for none at all or more than `max_items`. Items longer than `max_chars`
    are cut to that length (models cut them anyway; the caller can say so).
    """
    cleaned = clean_text(text, what=f"list of {what}s")
    parts = re.split(r"[\n,]" if commas else r"\n", cleaned)
    items: list[str] = []
    seen: set[str] = set()
    for part in parts:
        item = " ".join(part.split())
        if max_chars is not None:
            item = item[:max_chars].rstrip()
        if item and item.casefold() not in seen:
            seen.add(item.casefold())
            items.append(item)
    if not items:
        how = "one per line" + (" or separated by commas" if commas else "")
        raise LabError(f"Please type at least one {what} ({how}).")
    if len(items) > max_items:
        raise LabError(f"Please give at most {max_items} {what}s at a time; you gave {len(items)}.")
    return items
