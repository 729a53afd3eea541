"""The operator under churn (issue 17): N InferenceServices in the local cluster, and every
second one more created, one changed (a new capacity: a new generation) and one deleted, for
M minutes, while the operator, installed with the chart and held to its RBAC, plans for all of
them on the local cluster's 5 s tick (harness.churn says what the services are).

    .venv/bin/python bench/churn_bench.py [--services 1000] [--namespaces 10] [--rate 1]
        [--minutes 10] [--dir DIR]

It prints the churn done, how long the first statuses took, the ticks, the operator's RSS over
the churn (after its first minute and at its end, their ratio, the growth over the second
half), what was left behind once it settled (owned Deployments without their service, user
Deployments that went with one, stale statuses, deleted services still in /metrics, live ones
missing from it, kopf's annotations), and the errors: aiscaler_errors_total by stage and the
log lines above info. Times are wall-clock on this machine, with the whole cluster sharing its
CPUs; no test asserts them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def growth_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """The least-squares slope of RSS over the second half of the samples, in MB a minute."""
    half = samples[len(samples) // 2 :]
    if len(half) < 2:
        return float("nan")
    slope = statistics.linear_regression([t for t, _ in half], [m for _, m in half]).slope
    return slope * 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1.0, help="of each operation, per second")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--dir", type=Path, help="data and logs (default: a temporary folder)")
    args = parser.parse_args()
    sys.path[:0] = [str(REPO / "operator"), str(REPO / "tests" / "integration")]
    from harness.churn import ChurnLoad, churn_and_settle, released

    load = ChurnLoad(args.services, args.namespaces, args.rate, args.minutes * 60.0)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="churn-"))
    print(f"churn: {load} (logs in {workdir})", flush=True)
    with released(workdir, load) as (churn, operator):
        out = churn_and_settle(churn, operator, sample_every_s=15.0)
    # From the first minute on: the first samples still hold the start-up's transient.
    first = next(m for t, m in out.rss_mb if t >= 60.0)
    last = out.rss_mb[-1][1]
    left = out.leftovers
    rows = [
        ("created / updated / deleted", f"{out.done['create']} / {out.done['update']} / "
         f"{out.done['delete']} (live: {load.services})"),
        ("every service's first status after", f"{out.first_status_s:.0f} s"),
        ("ticks (mean duration)", f"{out.ticks} ({out.tick_mean_s:.2f} s)"),
        ("operator RSS at 1 min / at the end", f"{first:.0f} / {last:.0f} MB "
         f"(x{last / first:.3f})"),
        ("RSS growth, second half", f"{growth_mb_per_min(out.rss_mb):+.2f} MB/min"),
        ("settled after the churn in", f"{out.settled_s:.0f} s"),
        ("orphaned owned Deployments", str(len(left.orphans))),
        ("user Deployments gone with a service", str(len(left.user_deployments_gone))),
        ("live services with a stale status", str(len(left.stale_statuses))),
        ("deleted services still in /metrics", str(len(left.still_reported))),
        ("live services missing from /metrics", str(len(left.unreported))),
        ("live services with kopf's annotations", str(len(left.annotated))),
        ("aiscaler_errors_total", str(out.errors or 0)),
        ("operator log lines above info", str(len(out.log_problems))),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("RSS samples (s, MB): " + ", ".join(f"{t:.0f}:{m:.0f}" for t, m in out.rss_mb))
    for line in out.log_problems[:20]:
        print(f"  log: {line}")
    return 0 if left.clean() and not out.errors and not out.log_problems else 1


if __name__ == "__main__":
    sys.exit(main())
