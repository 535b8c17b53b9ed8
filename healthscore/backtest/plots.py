"""The backtest report's plots: matplotlib (Agg) figures inlined as SVG, no external asset.

matplotlib is the ``report`` extra, imported only when a plot is drawn.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Sequence
from typing import Any

GRADE_COLORS = {
    "red": "#d64541",
    "yellow": "#e8b10e",
    "green": "#2e9e5b",
    "insufficient_data": "#9aa0a6",
}


@functools.cache
def pyplot() -> Any | None:
    """matplotlib's pyplot on the Agg backend; None without matplotlib (the report extra)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the backend

    return plt


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    pyplot().close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def _fig(w: float = 6.0, h: float = 3.8) -> tuple[Any, Any]:
    return pyplot().subplots(figsize=(w, h), dpi=100)


def roc_plot(
    roc: dict[str, list[float]], auc: float | None, fit: dict[str, Any] | None = None
) -> str:
    fig, ax = _fig(5.2, 4.4)
    ax.plot([0, 1], [0, 1], ls="--", color="#999", lw=1, label="random (0.50)")
    if roc.get("fpr"):
        ax.plot(
            roc["fpr"],
            roc["tpr"],
            color="#1f5fa8",
            lw=2,
            label=f"current scorecard, all snapshots, every row ({number_text(auc)})",
        )
    if fit is not None and fit.get("roc_default", {}).get("fpr"):
        ax.plot(
            fit["roc_default"]["fpr"],
            fit["roc_default"]["tpr"],
            color="#1f5fa8",
            lw=1.5,
            ls=":",
            label=f"current scorecard, held out ({number_text(fit['auc_default'])})",
        )
    if fit is not None and fit.get("roc_fitted", {}).get("fpr"):
        ax.plot(
            fit["roc_fitted"]["fpr"],
            fit["roc_fitted"]["tpr"],
            color="#2e9e5b",
            lw=1.5,
            ls="--",
            label=f"fitted scorecard, held out ({number_text(fit['auc_fitted'])})",
        )
    ax.set_xlabel("share of retained accounts flagged (false positive rate)")
    ax.set_ylabel("share of churners caught (true positive rate)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("ROC curve (risk = 100 − score; insufficient data riskiest)")
    return _svg(fig)


def grade_plot(grades: list[dict[str, Any]], base: float | None) -> str:
    fig, ax = _fig()
    names = [g["bucket"] for g in grades]
    rates = [100 * (g["churn_rate"] or 0) for g in grades]
    bars = ax.bar(names, rates, color=[GRADE_COLORS.get(n, "#888") for n in names])
    for bar, g in zip(bars, grades, strict=True):
        ax.annotate(
            f"{100 * (g['churn_rate'] or 0):.1f}%\n{g['rows']} rows",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    if base:
        ax.axhline(
            100 * base, color="#555", ls="--", lw=1, label=f"all accounts ({100 * base:.1f}%)"
        )
        ax.legend(fontsize=8)
    ax.set_ylabel("churned within the horizon (%)")
    ax.set_title("Churn rate by grade")
    ax.margins(y=0.25)
    return _svg(fig)


def distribution_plot(snapshots: list[dict[str, Any]]) -> str:
    fig, ax = _fig(7.0, 3.8)
    dates = [s["date"] for s in snapshots]
    q = {
        k: [s["score_quantiles"][k] for s in snapshots] for k in ("p10", "p25", "p50", "p75", "p90")
    }
    x = range(len(dates))
    ax.fill_between(
        x, _nan(q["p10"]), _nan(q["p90"]), color="#1f5fa8", alpha=0.15, label="10th–90th percentile"
    )
    ax.fill_between(
        x, _nan(q["p25"]), _nan(q["p75"]), color="#1f5fa8", alpha=0.3, label="25th–75th percentile"
    )
    ax.plot(x, _nan(q["p50"]), color="#1f5fa8", lw=2, label="median")
    churn = [s["churned"] for s in snapshots]
    ax2 = ax.twinx()
    ax2.bar(x, churn, color="#d64541", alpha=0.25, width=0.6, label="churned in horizon")
    ax2.set_ylabel("accounts churned within the horizon", color="#d64541", fontsize=8)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    step = max(1, len(dates) // 8)
    ax.set_xticks(list(x)[::step], dates[::step], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("score")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Score distribution over time")
    return _svg(fig)


def measure_plot(measures: list[dict[str, Any]]) -> str:
    rows = sorted((m for m in measures if m["auc"] is not None), key=lambda m: m["auc"])
    fig, ax = _fig(6.0, max(2.5, 0.38 * len(rows) + 1.2))
    labels = [m["label"] for m in rows]
    values = [m["auc"] - 0.5 for m in rows]
    colors = ["#2e9e5b" if v >= 0 else "#d64541" for v in values]
    ax.barh(labels, values, left=0.5, color=colors)
    for i, m in enumerate(rows):
        ax.annotate(
            f"{m['auc']:.2f}",
            (m["auc"], i),
            xytext=(3 if m["auc"] >= 0.5 else -3, 0),
            textcoords="offset points",
            va="center",
            ha="left" if m["auc"] >= 0.5 else "right",
            fontsize=8,
        )
    ax.axvline(0.5, color="#555", lw=1)
    lo = min([0.4] + [m["auc"] - 0.05 for m in rows])
    hi = max([0.6] + [m["auc"] + 0.08 for m in rows])
    ax.set_xlim(max(0.0, lo), min(1.0, hi))
    ax.set_xlabel("AUC alone (green: as the card assumes; red: reversed)", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("Which measures predict churn here")
    return _svg(fig)


def calibration_plot(calibration: list[dict[str, Any]], base: float | None) -> str:
    fig, ax = _fig()
    mids = [(c["score_from"] + c["score_to"]) / 2 for c in calibration]
    rates = [100 * (c["churn_rate"] or 0) for c in calibration]
    ax.plot(mids, rates, marker="o", color="#1f5fa8")
    for x, y, c in zip(mids, rates, calibration, strict=True):
        ax.annotate(
            str(c["rows"]),
            (x, y),
            xytext=(0, 5),
            textcoords="offset points",
            ha="center",
            fontsize=7,
            color="#666",
        )
    if base:
        ax.axhline(100 * base, color="#555", ls="--", lw=1, label="all accounts")
        ax.legend(fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("score bin (labels: rows in the bin)")
    ax.set_ylabel("observed churn rate (%)")
    ax.set_title("Calibration: churn rate per score bin")
    return _svg(fig)


def _nan(values: Sequence[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]


def number_text(value: Any, digits: int = 3) -> str:
    """A number as the report prints it (– for none)."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
