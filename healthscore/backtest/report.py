"""The backtest as one self-contained HTML file a CS lead can open: plots and tables.

Plots are drawn with matplotlib (Agg) and inlined as SVG, styles are inline: the file loads no
script, font, stylesheet or image from anywhere, so it can be mailed or attached to a ticket.
matplotlib is the ``report`` extra; without it the report says so where the plots would be
and keeps every table.
"""

from __future__ import annotations

import functools
import html
import io
import re
from collections.abc import Sequence
from typing import Any

NO_PLOTS = (
    "The plots need matplotlib, which is not installed: pip install 'healthscore[report]'. "
    "The tables below hold the same numbers."
)

GRADE_COLORS = {
    "red": "#d64541",
    "yellow": "#e8b10e",
    "green": "#2e9e5b",
    "insufficient_data": "#9aa0a6",
}
CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
.sub{color:#666}.kpis{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0}
.kpi{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:160px}
.kpi b{display:block;font-size:1.5em}.kpi span{color:#666;font-size:.85em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1em}
figure{margin:0}figcaption{color:#555;font-size:.85em}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
.add{color:#1a7f37}.del{color:#cf222e}.note{color:#666;font-size:.9em}
"""


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
            label=f"current scorecard, all snapshots ({_num(auc)})",
        )
    if fit is not None and fit.get("roc_default", {}).get("fpr"):
        ax.plot(
            fit["roc_default"]["fpr"],
            fit["roc_default"]["tpr"],
            color="#1f5fa8",
            lw=1.5,
            ls=":",
            label=f"current scorecard, held out ({_num(fit['auc_default'])})",
        )
    if fit is not None and fit.get("roc_fitted", {}).get("fpr"):
        ax.plot(
            fit["roc_fitted"]["fpr"],
            fit["roc_fitted"]["tpr"],
            color="#2e9e5b",
            lw=1.5,
            ls="--",
            label=f"fitted scorecard, held out ({_num(fit['auc_fitted'])})",
        )
    ax.set_xlabel("share of retained accounts flagged (false positive rate)")
    ax.set_ylabel("share of churners caught (true positive rate)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("ROC curve (risk = 100 − score)")
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


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def rate_rows(rows: list[dict[str, Any]], extra: Sequence[str] = ()) -> list[list[Any]]:
    return [
        [
            r["bucket"],
            *(_num(r.get(k), 1) for k in extra),
            r["rows"],
            r["churned"],
            _pct(r["churn_rate"]),
            _num(r["lift"], 2),
        ]
        for r in rows
    ]


def _kpi(value: str, label: str) -> str:
    return f'<div class="kpi"><b>{html.escape(value)}</b><span>{html.escape(label)}</span></div>'


def _plots(report: dict[str, Any], fit: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(name, SVG, caption) of each plot; needs matplotlib."""
    s = report["summary"]
    return [
        (
            "ROC curve",
            roc_plot(report["roc"], s["roc_auc"], fit),
            "How many churners the score catches for each share of healthy accounts it flags.",
        ),
        (
            "Churn rate by grade",
            grade_plot(report["grades"], s["churn_rate"]),
            "A working card shows red well above the dashed line and green well below.",
        ),
        (
            "Score distribution over time",
            distribution_plot(report["snapshots"]),
            "Score percentiles per snapshot; bars: accounts that churned within the horizon.",
        ),
        (
            "Per-measure AUC",
            measure_plot(report["measures"]),
            "Each measure on its own; bars near 0.5 carry little signal.",
        ),
        (
            "Calibration",
            calibration_plot(report["calibration"], s["churn_rate"]),
            "Observed churn rate per score bin: it should fall as the score rises.",
        ),
    ]


def render_html(report: dict[str, Any], *, title: str = "Does the score predict churn?") -> str:
    """The whole report from the backtest JSON (``report``, see ``backtest_json``)."""
    s = report["summary"]
    card = report.get("scorecard", {})
    ci = s.get("roc_auc_ci") or [None, None]
    pr_ci = s.get("pr_auc_ci") or [None, None]
    flap = report["flapping"]
    fit = report.get("fit")
    kpis = "".join(
        [
            _kpi(
                f"{_num(s['roc_auc'])}",
                f"ROC AUC (95% CI {_num(ci[0])}–{_num(ci[1])}); "
                "0.5 is a coin toss, 1.0 a perfect ranking",
            ),
            _kpi(
                f"{_num(s['pr_auc'])}",
                f"PR AUC (CI {_num(pr_ci[0])}–{_num(pr_ci[1])}); "
                f"baseline {_num(s['pr_auc_baseline'])}",
            ),
            _kpi(f"{s['churners']} / {s['accounts']}", "accounts that churned / accounts"),
            _kpi(_pct(s["churn_rate"]), f"churned within {s['horizon_days']} days of a snapshot"),
            _kpi(_pct(s["insufficient_share"]), "rows with insufficient data (not scored)"),
            _kpi(_pct(flap.get("change_rate")), "grade changes between consecutive snapshots"),
        ]
    )
    plots = _plots(report, fit) if pyplot() is not None else []
    figures = "".join(
        f'<figure data-plot="{html.escape(name)}">{svg}<figcaption><b>{html.escape(name)}.'
        f"</b> {html.escape(cap)}</figcaption></figure>"
        for name, svg, cap in plots
    )
    plots_section = (
        f'<h2>Plots</h2><div class="plots">{figures}</div>'
        if plots
        else f"<h2>Plots</h2><p class=note>{html.escape(NO_PLOTS)}</p>"
    )
    measures = table(
        ["measure", "weight", "present", "AUC alone", "direction"],
        [
            [
                m["label"],
                _num(m["weight"], 2),
                _pct(m["present"]),
                _num(m["auc"]),
                "–"
                if m["lower_points_more_churn"] is None
                else (
                    "fewer points → more churn"
                    if m["lower_points_more_churn"]
                    else "MORE points → more churn (reversed)"
                ),
            ]
            for m in sorted(report["measures"], key=lambda m: -(m["strength"] or 0))
        ],
    )
    snaps = table(
        [
            "date",
            "accounts",
            "churned in horizon",
            "AUC",
            "insufficient",
            "median score",
            "red",
            "yellow",
            "green",
        ],
        [
            [
                x["date"],
                x["accounts"],
                x["churned"],
                _num(x["roc_auc"]),
                _pct(x["insufficient_share"]),
                _num(x["score_quantiles"]["p50"], 1),
                x["grades"]["red"],
                x["grades"]["yellow"],
                x["grades"]["green"],
            ]
            for x in report["snapshots"]
        ],
    )
    flap_table = table(
        ["", "value"],
        [
            ["consecutive snapshot pairs compared", flap["pairs"]],
            ["grade changes", f"{flap['changes']} ({_pct(flap['change_rate'])})"],
            ["reversals (a change undone at the next snapshot)", flap["reversals"]],
            [
                "accounts that flapped",
                f"{flap['accounts_flapping']} of "
                f"{flap['accounts_compared']} ({_pct(flap['flapping_share'])})",
            ],
        ],
    )
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">Scorecard <b>{html.escape(str(card.get("name", "")))}</b> '
        f"(version {html.escape(str(card.get('version', '')))}) — {s['snapshots']} snapshots "
        f"from {s['first_snapshot']} to {s['last_snapshot']}, horizon {s['horizon_days']} days. "
        f"Each account is scored as of each snapshot date with only the data known then, and "
        f"labelled churned when it churned within the horizon after it; accounts already gone "
        f"by a snapshot are left out of it.</p>",
        f'<div class="kpis">{kpis}</div>',
        _fit_section(fit) if fit else "",
        plots_section,
        "<h2>Churn by grade</h2>"
        + table(["grade", "rows", "churned", "churn rate", "lift"], rate_rows(report["grades"])),
        "<h2>Churn by score decile</h2><p class=note>Decile 1 holds the lowest scores.</p>"
        + table(
            ["decile", "score from", "score to", "rows", "churned", "churn rate", "lift"],
            rate_rows(report["deciles"], ("score_min", "score_max")),
        ),
        "<h2>Calibration</h2>"
        + table(
            ["score bin", "rows", "churned", "churn rate", "lift"], rate_rows(report["calibration"])
        )
        + _expected_section(report.get("expected_churn") or {}, s["horizon_days"]),
        "<h2>Which measures predict churn here</h2>" + measures,
        "<h2>Grade flapping</h2>" + flap_table,
        "<h2>Snapshots</h2>" + snaps,
    ]
    if s.get("censored_snapshots"):
        sections.append(
            f"<p class=note>Left out (outcomes not known for the whole horizon "
            f"yet): {html.escape(', '.join(s['censored_snapshots']))}</p>"
        )
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


def _expected_table(calibration: dict[str, Any]) -> str:
    return table(
        ["decile", "score from", "score to", "rows", "expected churn", "observed churn", "gap"],
        [
            [
                d["decile"],
                _num(d["score_min"], 1),
                _num(d["score_max"], 1),
                d["rows"],
                _pct(d["expected"]),
                _pct(d["observed"]),
                f"{100 * d['gap']:+.1f} pts",
            ]
            for d in calibration.get("deciles", [])
        ],
    )


def _expected_section(calibration: dict[str, Any], horizon_days: int) -> str:
    """Expected (the score as a churn probability) against observed churn per decile."""
    found = calibration.get("map")
    if not found or not calibration.get("deciles"):
        return ""
    return (
        f"<h3>Expected against observed churn per score decile</h3><p class=note>The score "
        f"read as a probability of churn within {horizon_days} days: "
        f"σ({found['intercept']:.3f} {found['slope']:+.4f} × score), a logistic curve fitted "
        "by maximum likelihood; each snapshot's expected churn comes from the curve fitted on "
        "the other snapshots. Decile 1 holds the lowest scores.</p>" + _expected_table(calibration)
    )


def _learned_section(fit: dict[str, Any]) -> str:
    """A learned card's measures explained as points lost, and its calibration."""
    rows = [
        [
            m["label"],
            m["status"] + (" (direction flipped)" if m["flipped"] else ""),
            m["better"] if m["bands"] else "–",
            f"{m['old_max_loss']:g} → {m['max_loss']:g}",
            "; ".join(
                f"{b['band']}: −{b['points_lost']:g} ({_pct(b['churn_rate'])} churn, "
                f"{_pct(b['share'])} of accounts)"
                for b in m["bands"]
            )
            or (m["new"] if m["max_loss"] else "–"),
        ]
        for m in fit["measures"]
        if m["status"] != "unchanged" or m["max_loss"]
    ]
    calibration = fit.get("calibration") or {}
    return (
        f"<p>{fit['candidates']} candidate measures were binned and selected on the "
        f"{fit['train_rows']} rows of the fitting snapshots. A measure's <i>max loss</i> is "
        "its share of the score: what an account in its worst band loses.</p>"
        + table(
            ["measure", "what changed", "better", "max loss now → fitted", "points lost by band"],
            rows,
        )
        + (
            "<h3>The fitted score as a churn probability (calibrated on the judged snapshots)"
            "</h3>" + _expected_table(calibration)
            if calibration.get("deciles")
            else ""
        )
    )


def _fit_section(fit: dict[str, Any]) -> str:
    rows = [
        [c["measure"], _num(c["old"], 2), _num(c["new"], 2), f"{c['new'] - c['old']:+.2f}"]
        for c in fit["weight_changes"]
    ]
    diff = "".join(
        f'<span class="{"add" if line.startswith("+") else "del"}">{html.escape(line)}</span>'
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
        else html.escape(line)
        for line in fit["diff"].splitlines(keepends=True)
    )
    return (
        "<h2>Fitted scorecard (proposal)</h2>"
        f"<p>{'Measures, bands and weights' if fit.get('learned') else 'Weights'} learned on "
        f"{len(fit['train_snapshots'])} earlier snapshots, judged on the "
        f"{len(fit['test_snapshots'])} later ones it never saw. Held-out ROC AUC: current "
        f"<b>{_num(fit['auc_default'])}</b>, fitted <b>{_num(fit['auc_fitted'])}</b>. Written to "
        f"<code>{html.escape(fit['path'])}</code>; the live scorecard is unchanged.</p>"
        + (
            "<p><b>The outcomes do not pay for other weights:</b> no reweighting beat the "
            "current proportions on the last fitting snapshots, so the proposal keeps them.</p>"
            if fit.get("kept_current")
            else ""
        )
        + (
            _learned_section(fit)
            if fit.get("learned")
            else table(["weight", "current", "fitted", "change"], rows)
        )
        + (f"<pre>{diff}</pre>" if diff else "<p class=note>No line of the YAML changes.</p>")
    )
