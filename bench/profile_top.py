"""The top lines of a py-spy profile: where the operator process spends its samples.

Reads py-spy's raw (collapsed stack) output and prints, for the stacks of one process (default:
the operator process that bench/operator_bench.py starts; all its threads) and optionally
only those through one function, the functions with the most samples: inclusive (the function or
anything it calls) and self (the function itself).

    py-spy record --subprocesses --rate 50 -f raw -o prof.txt -- \
        .venv/bin/python bench/operator_bench.py ...
    .venv/bin/python bench/profile_top.py prof.txt [--under run_tick] [--top 25]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# A frame is "function (file:line)"; the line is dropped so a function counts once.
_FRAME = re.compile(r"^(.*) \(([^:()]+)(?::\d+)?\)$")


def frames(stack: str) -> list[str]:
    names = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame)
        if match and not frame.startswith("process "):
            names.append(f"{match.group(1)} ({match.group(2)})")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="py-spy raw output (-f raw)")
    parser.add_argument(
        "--process",
        default="--operate",
        help="only stacks of processes whose command line contains this",
    )
    parser.add_argument("--under", default="", help="only stacks through this function")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        names = frames(stack)
        if args.process not in stack or not names:
            continue
        if args.under and not any(n.startswith(args.under + " ") for n in names):
            continue
        samples = int(count)
        total += samples
        for name in set(names):
            inclusive[name] += samples
        own[names[-1]] += samples
    if not total:
        print("no samples match")
        return 1
    print(f"{total} samples" + (f" under {args.under}" if args.under else ""))
    print(f"{'incl %':>7} {'self %':>7}  function (file)")
    for name, samples in inclusive.most_common(args.top):
        print(f"{100 * samples / total:7.1f} {100 * own[name] / total:7.1f}  {name}")
    print(f"\ntop by self samples\n{'self %':>7}  function (file)")
    for name, samples in own.most_common(args.top):
        print(f"{100 * samples / total:7.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
