"""What the overload and failover reports share: the worst run per strategy, table cells, the per-second chart."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.overload import worst_index
from bench.scenarios import RunResult

__all__ = ["STRATEGY_COLORS", "Panel", "all_runs_lines", "fmt", "timeline_chart", "worst_name", "worst_runs"]

STRATEGY_COLORS = {
    "naive-per-invocation": "tab:gray",
    "naive-global": "tab:red",
    "npm-serverless-mysql": "tab:orange",
    "with_mysql": "tab:blue",
}
"""One color per strategy, the same in every chart."""


def fmt(value: float | None, digits: int = 0) -> str:
    """``value`` with thousands separators and ``digits`` decimals; ``-`` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def worst_runs(
    results: Sequence[RunResult],
    scenario: str,
    key: Callable[[dict[str, Any]], tuple[Any, ...]],
    kind: str | None = None,
) -> tuple[list[RunResult], dict[str, list[RunResult]]]:
    """The rows to report for one scenario: one per strategy (the worst run by ``key`` where there are several,
    see :func:`bench.overload.worst_index`), and every strategy's runs in order; ``kind``: only runs whose data has
    that part ("failover")."""
    by_strategy: dict[str, list[RunResult]] = {}
    for r in results:
        if r.scenario == scenario and (kind is None or kind in r.data):
            by_strategy.setdefault(r.strategy, []).append(r)
    rows = [runs[worst_index([key(r.data) for r in runs])] for runs in by_strategy.values()]
    return rows, by_strategy


def worst_name(r: RunResult, by_strategy: dict[str, list[RunResult]]) -> str:
    """The strategy column of a reported row: which run it is where there were several."""
    n_runs = len(by_strategy[r.strategy])
    return str(r.data["strategy"]) + (f" (worst of {n_runs}: run {r.run})" if n_runs > 1 else "")


def all_runs_lines(by_strategy: dict[str, list[RunResult]], summary: Callable[[RunResult], str]) -> list[str]:
    """Below a table: one bullet per run of every strategy that ran more than once."""
    lines: list[str] = []
    for strategy, runs in by_strategy.items():
        if len(runs) > 1:
            lines += ["", f"All runs of {strategy}:", "", *[f"- {summary(r)}" for r in runs]]
    return lines


@dataclass(frozen=True)
class Panel:
    """One panel of a per-second chart: a timeline series, its y label, and optionally a second series of the same
    runs drawn dotted (client-counted next to server-counted)."""

    series: str
    ylabel: str
    dotted: str | None = None
    label_suffix: str = ""  # after the strategy in the legend (which of the two series is solid)
    symlog: bool = False  # counts that span orders of magnitude (connect attempts)


def _nan(values: Sequence[float | None]) -> list[float]:
    return [v if v is not None else math.nan for v in values]


def timeline_chart(
    path: Path,
    kind: str,
    rows: Sequence[RunResult],
    by_strategy: dict[str, list[RunResult]],
    panels: Sequence[Panel],
    *,
    height: float,
    shade: Sequence[tuple[float, float]],
    title: str,
    xlabel: str,
    legends: Sequence[tuple[int, str]],
    decorate: Callable[[Sequence[Any]], None] | None = None,
) -> str:
    """One PNG of ``r.data[kind]["timeline"]``: a panel per series, a step line per run (the reported run bold, the
    other runs of its strategy thin), the offered load on the first panel, ``shade`` as purple spans; ``decorate``
    adds what one kind of scenario has of its own, ``legends`` are (panel, location)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(11, height), sharex=True)
    for strategy, runs in by_strategy.items():
        shown = next(r for r in rows if r.strategy == strategy)
        for r in runs:
            tl = r.data[kind]["timeline"]
            main = r is shown
            style = {
                "color": STRATEGY_COLORS.get(strategy),
                "linewidth": 1.6 if main else 0.7,
                "alpha": 1 if main else 0.5,
            }
            label = strategy + (f" run {r.run}" if len(runs) > 1 else "") if main or len(runs) > 1 else None
            for ax, panel in zip(axes, panels, strict=True):
                solid_label = label + panel.label_suffix if label else None
                ax.step(tl["second"], _nan(tl[panel.series]), where="post", label=solid_label, **style)
                if panel.dotted is not None:
                    ax.step(tl["second"], _nan(tl[panel.dotted]), where="post", linestyle=":", **style)
    first = rows[0].data[kind]["timeline"]
    axes[0].step(
        first["second"],
        first["offered"],
        where="post",
        color="black",
        linewidth=0.8,
        linestyle="--",
        label="offered (arrivals / s)",
    )
    for ax, panel in zip(axes, panels, strict=True):
        if panel.symlog:
            ax.set_yscale("symlog", linthresh=10)
            ax.set_ylim(bottom=0)
        for start, end in shade:
            ax.axvspan(start, end, color="purple", alpha=0.12)
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.grid(True, alpha=0.3)
    if decorate is not None:
        decorate(axes)
    for index, loc in legends:
        axes[index].legend(fontsize=7, loc=loc, ncol=2)
    axes[-1].set_xlabel(xlabel)
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
