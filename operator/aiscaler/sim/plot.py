"""`--plot`: demand and capacity per policy over time, and the Pareto chart (for people)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aiscaler.sim.engine import Demand
from aiscaler.sim.report import Report


def write_plot(report: Report, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    demand = Demand(report.trace.rate, report.trace.bin_s)
    hours = np.arange(demand.n) * demand.dt / 3600.0
    fig, (ax_time, ax_pareto) = plt.subplots(2, 1, figsize=(12, 10))

    ax_time.plot(hours, demand.rate, color="black", linewidth=1.2, label="demand")
    for r in report.results:
        if r.policy in report.sweeps and r.variant == "default":
            continue  # with --tune, the tuned variant stands for its policy
        if r.variant in ("default", "tuned"):
            capacity = r.outcome.ready_replicas * report.config.capacity
            ax_time.step(
                hours, capacity, where="post", linewidth=0.8, label=f"{r.policy} {r.variant}"
            )
    ax_time.set_xlabel("hours since trace start")
    ax_time.set_ylabel(f"{report.trace.column} per second")
    ax_time.set_title(f"{report.trace.name}: demand and ready capacity per policy")
    ax_time.legend(fontsize=8, ncol=4)

    oracle = report.oracle_gpu_hours or 1.0
    for name, sweep in report.sweeps.items():
        xs = [r.outcome.gpu_hours / oracle for r in sweep]
        ys = [r.outcome.slo_attainment for r in sweep]
        ax_pareto.plot(xs, ys, marker="o", label=f"{name} (target swept)")
    for r in report.results:
        if r.policy not in report.sweeps and r.variant != "tuned":
            ax_pareto.scatter(
                [r.outcome.gpu_hours / oracle],
                [r.outcome.slo_attainment],
                marker="*",
                s=120,
                label=f"{r.policy} {r.variant}",
            )
    ax_pareto.axhline(
        report.config.slo_attainment,
        color="grey",
        linestyle="--",
        linewidth=0.8,
        label="attainment goal",
    )
    ax_pareto.set_xlabel("GPU-hours / oracle GPU-hours")
    ax_pareto.set_ylabel("SLO attainment")
    ax_pareto.set_title("cost against attainment (up and left is better)")
    ax_pareto.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
