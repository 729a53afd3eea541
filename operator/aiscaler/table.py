"""Plain-text tables whose columns are as wide as their widest cell: no value, however large,
shifts the columns after it."""

from __future__ import annotations

from collections.abc import Sequence


def render(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """The table as lines; the first `left` columns (names) are left-aligned, the others
    (numbers) right-aligned; columns are two spaces apart."""
    lines = [header, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def text(cells: Sequence[str]) -> str:
        aligned = (
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(aligned).rstrip()

    return "\n".join(text(line) for line in lines)
