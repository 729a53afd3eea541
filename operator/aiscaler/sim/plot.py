"""`--plot`: demand and ready capacity per policy over time, and the cost-attainment frontiers
(for people)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aiscaler.sim.report import Report


def write_plot(report: Report, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenario, cfg = report.scenario, report.scenario.config
    fig, (ax_time, ax_frontier) = plt.subplots(2, 1, figsize=(12, 10))

    per_bin = max(1, round(scenario.bin_s))
    demand = scenario.rates[: len(scenario.rates) // per_bin * per_bin].reshape(-1, per_bin)
    hours = np.arange(len(demand)) * scenario.bin_s / 3600.0
    ax_time.plot(hours, demand.mean(axis=1), color="black", linewidth=1.2, label="demand")
    tuned = {r.policy for r in report.results if r.variant == "tuned"}
    for r in report.results:
        if r.ready is None or r.policy in tuned:
            continue  # with --tune, the tuned variant stands for its policy (not kept: no series)
        t = (np.arange(len(r.ready)) + 1) * cfg.scrape_s / 3600.0
        ax_time.step(t, r.ready * cfg.capacity, where="post", linewidth=0.8,
                     label=f"{r.policy} {r.variant}")  # fmt: skip
    if scenario.split_s > 0:
        ax_time.axvline(scenario.split_s / 3600.0, color="grey", linestyle=":", linewidth=0.8,
                        label="tune | evaluate")  # fmt: skip
    ax_time.set_xlabel("hours since trace start")
    ax_time.set_ylabel("requests per second")
    ax_time.set_title(f"{scenario.name}: demand and ready capacity (ready pods x capacity)")
    ax_time.legend(fontsize=8, ncol=4)

    oracle = report.oracle_gpu_hours or 1.0
    for name in sorted({c.policy for c in report.configs}):
        points = sorted(
            (c.evaluate.gpu_hours / oracle, c.evaluate.slo_attainment)
            for c in report.configs
            if c.policy == name
        )
        ax_frontier.scatter(*zip(*points, strict=True), s=12, label=f"{name} configurations")
    for r in report.results:
        if r.variant in ("default", "tuned", "p99"):
            ax_frontier.scatter([r.summary.gpu_hours / oracle], [r.summary.slo_attainment],
                                marker="*", s=120, label=f"{r.policy} {r.variant}")  # fmt: skip
    ax_frontier.axhline(cfg.slo_attainment, color="grey", linestyle="--", linewidth=0.8,
                        label="attainment goal")  # fmt: skip
    ax_frontier.set_xlabel("GPU-hours / oracle GPU-hours (evaluation window)")
    ax_frontier.set_ylabel("SLO attainment")
    ax_frontier.set_title("cost against attainment (up and left is better)")
    ax_frontier.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
