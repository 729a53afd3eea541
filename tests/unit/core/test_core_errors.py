"""An error kept as a value must not keep alive what the frames it passed through referenced."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from typing import NoReturn

import pytest

from aiscaler.core.errors import detached


class Listing:
    """Stands for what a tick holds while it reads: thousands of objects."""


def fail_to_reach() -> NoReturn:
    """Raise an error chained to its cause, as the kube client does."""
    try:
        raise OSError("connection refused")
    except OSError as cause:
        raise LookupError("API server unreachable") from cause


def read_and_keep_the_error(
    results: dict[str, Exception], keep: Callable[[Exception], Exception]
) -> weakref.ref[Listing]:
    listing = Listing()
    try:
        fail_to_reach()
    except LookupError as error:
        results["target"] = keep(error)
    return weakref.ref(listing)


@pytest.fixture
def no_garbage_collection() -> Iterator[None]:
    # Only reference counting frees here, as between the interpreter's rare full collections.
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_garbage_collection")
@pytest.mark.parametrize(("keep", "freed"), [(lambda e: e, False), (detached, True)])
def test_a_detached_error_lets_its_frames_go(
    keep: Callable[[Exception], Exception], freed: bool
) -> None:
    results: dict[str, Exception] = {}
    listing = read_and_keep_the_error(results, keep)
    assert (listing() is None) is freed
    assert str(results["target"]) == "API server unreachable"


def test_detached_clears_the_whole_chain_and_keeps_the_messages() -> None:
    try:
        fail_to_reach()
    except LookupError as caught:
        error = detached(caught)
    assert error.__traceback__ is None
    assert isinstance(error.__cause__, OSError) and error.__cause__.__traceback__ is None
    assert error.__context__ is error.__cause__
    assert str(error.__cause__) == "connection refused"
