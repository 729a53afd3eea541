"""Checks of what users hand the `aiscaler` commands, shared by every command.

Each check raises `InputError` with a message that names the input and says how to fix it; a
command prints it on one line (`fail`) and exits with 2, having written nothing. Outputs are
checked before any long run, so a typo in `--json` does not cost the run.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import yaml

EXIT_USAGE = 2
Number = TypeVar("Number", int, float)

# The most replicas a simulated service may need at its peak: more is no real service, and it
# would overflow the simulator's report.
MAX_REPLICAS = 10_000
# The most any demand trace value may be per bin. The real traces peak below 1e7 per bin; a
# trillion requests or tokens per bin is a wrong column or unit, and values this far out make
# the simulator's replica counts overflow.
MAX_TRACE_VALUE = 1e12


class InputError(ValueError):
    """Something a user gave a command that it cannot use; the message says what and why."""


def fail(command: str, error: Exception) -> int:
    """Print `error` as the command's one-line error and return the exit code for bad input."""
    message = " ".join(str(error).split())  # one line, whatever the cause's text held
    print(f"aiscaler {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


# -- option values (argparse types: argparse names the option in its one-line error) ----------


def number(text: str, ok: Callable[[float], bool], expected: str) -> float:
    """`text` as a finite number for which `ok` holds; `expected` says which ones do."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
    return value


def positive_number(text: str) -> float:
    return number(text, lambda v: v > 0, "a positive number")


def non_negative_number(text: str) -> float:
    return number(text, lambda v: v >= 0, "a number >= 0")


def fraction(text: str) -> float:
    return number(text, lambda v: 0 < v < 1, "between 0 and 1")


def at_most(parse: Callable[[str], Number], most: float) -> Callable[[str], Number]:
    """The option type `parse`, bounded above by `most`."""

    def bounded(text: str) -> Number:
        value = parse(text)
        if value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most:g}, got {text}")
        return value

    return bounded


def _count(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {text}")
    return value


def positive_count(text: str) -> int:
    return _count(text, 1)


def non_negative_count(text: str) -> int:
    return _count(text, 0)


# -- files ------------------------------------------------------------------------------------


def output_file(path: Path, option: str, suffixes: Collection[str]) -> Path:
    """`path` can be written as the output of `option` and has one of `suffixes`."""
    if path.suffix.lower() not in suffixes:
        raise InputError(
            f"{option} {path}: the file name must end in one of {', '.join(sorted(suffixes))}"
        )
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; give a file name inside it")
    _writable_folder(path.parent, option, path)
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{option} {path}: the file exists and cannot be overwritten")
    return path


def output_folder(path: Path, option: str) -> Path:
    """`path` is a folder that exists or could be created, and can be written into (nothing
    is created: `create_folder` does that)."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: is a file, not a folder; give a folder")
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise InputError(f"{option} {path}: {existing} is a file, not a folder")
    _writable_folder(existing, option, path)
    return path


def _writable_folder(folder: Path, option: str, path: Path) -> None:
    folder = folder if str(folder) else Path(".")
    if not folder.is_dir():
        raise InputError(
            f"{option} {path}: the folder {folder} does not exist; create it or choose another"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: the folder {folder} cannot be written to")


def create_folder(path: Path, option: str) -> Path:
    """Create `path` (and its parents); an OS refusal becomes an InputError naming it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{option} {path}: cannot create the folder: {error.strerror}") from None
    return path


def check_trace_values(values: npt.NDArray[np.float64], where: str, column: str) -> None:
    """The values of a demand column as read from a trace file (NaN: an empty cell; row i is
    line i + 2 of the file): a first value, none negative, infinite or absurdly large. Every
    command reading a trace (simulate, backtest, train) applies this one check."""
    if len(values) and math.isnan(values[0]):
        raise InputError(
            f"{where}: {column} has no value in the first row; a demand series must start "
            "with a value (fill it in or drop the row)"
        )
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero((values < 0) | np.isinf(values) | (values > MAX_TRACE_VALUE))
    if len(bad):
        line, value = int(bad[0]) + 2, float(values[bad[0]])
        if value < 0:
            why = "is negative; demand cannot be"
        elif math.isinf(value):
            why = "is infinite"
        else:
            why = f"is above {MAX_TRACE_VALUE:g} per bin: check the column and its unit"
        raise InputError(f"{where} line {line}: {column} {value:g} {why}")


def check_replicas_needed(peak: float, capacity: float, option: str) -> None:
    """A demand peak (units/s) that `capacity` per replica serves with at most MAX_REPLICAS."""
    needed = peak / capacity
    if needed > MAX_REPLICAS:
        raise InputError(
            f"capacity {capacity:g}/s per replica: the trace's peak of {peak:g}/s needs "
            f"{needed:.3g} replicas, more than the {MAX_REPLICAS} a simulation plays; give a "
            f"larger {option}"
        )


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document in `path`; a missing file or bad YAML is an InputError naming the
    file, the line and the column. `what` prefixes the path: "--config " or "VARIABLE="."""
    text = read_text(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise yaml_problem(error, f"{what}{path}") from None


def read_text(path: Path, what: str) -> str:
    """The text of `path`; a file that cannot be read or is not UTF-8 is an InputError."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"{what}{path}: cannot read it: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise InputError(f"{what}{path}: is not UTF-8 text") from None


def yaml_problem(error: yaml.YAMLError, where: str) -> InputError:
    """What is wrong with the YAML of `where`, at which line and column, on one line."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = f" ({error.context})" if error.context else ""
        return InputError(f"{where}{at}: {error.problem}{context}; not valid YAML")
    if isinstance(error, yaml.reader.ReaderError):
        code = error.character if isinstance(error.character, int) else ord(error.character)
        return InputError(
            f"{where}: character U+{code:04X} at position {error.position} is not allowed in YAML"
        )
    return InputError(f"{where}: not valid YAML ({type(error).__name__})")


def pydantic_problems(
    errors: Iterable[Mapping[str, Any]],
    known: Callable[[tuple[Any, ...]], Collection[str]] = lambda _loc: (),
) -> list[str]:
    """`path: message` per pydantic error, without pydantic's type codes and links. An unknown
    key gets the nearest of `known(parent path)` as a hint."""
    problems = []
    for error in errors:
        loc = tuple(error["loc"])
        path = ".".join(_key(part) for part in loc) or "value"
        if error.get("type") == "extra_forbidden":
            problems.append(f"{path}: {unknown(str(loc[-1]), known(loc[:-1]))}")
        else:
            problems.append(f"{path}: {_message(error)}")
    return problems


def _key(part: Any) -> str:
    # A key as the user wrote it; one that is not plain text (a newline, a dot) is quoted.
    text = str(part)
    return text if text and text.isprintable() and "." not in text else json.dumps(text)


def unknown(key: str, known: Collection[str]) -> str:
    """Why `key` is refused, with the nearest known name (case and `_`/`-` ignored), if any."""
    plain = {_plain(name): name for name in known}
    near = difflib.get_close_matches(_plain(key), list(plain), n=1)
    return f"unknown key (did you mean {plain[near[0]]}?)" if near else "unknown key"


def _plain(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _message(error: Mapping[str, Any]) -> str:
    if error.get("type") == "missing":
        return "required"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str | int | float | bool) and str(value) not in message:
        message += f" (got {value!r})"
    return message
