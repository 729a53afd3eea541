"""Errors kept as values: a read that failed is returned in its result for the caller to
report, not raised."""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


def detached(error: E) -> E:
    """`error` without its traceback, nor those of the errors it was raised from or while.

    A caught error kept in a result would hold the frames it passed through, and all they
    reference, in a reference cycle that only a full garbage collection frees: under churn a
    whole tick's worth of objects piled up between collections and grew the heap
    (bench/RESULTS.md, "Operator under churn")."""
    pending: list[BaseException | None] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += [current.__cause__, current.__context__]
    return error
