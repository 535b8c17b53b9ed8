"""A year of daily product usage and the churn it led to, for the demo org's accounts.

Each account of a synthetic org (``sandbox.synthetic.generate_org``) gets hidden behaviour —
never the scorecard's formula:

- an *engagement* level that depends loosely on its archetype, and may *decay* from a random
  onset at a random rate (some healthy-looking accounts decay too, some declining ones not);
- *support trouble*: episodes of a few weeks in which tickets pile up and usage dips;
- an *executive sponsor* who is engaged or not (it shows only faintly, in fewer invites).

Daily usage is drawn from that hidden state with noise (weekends are quiet): ``logins``,
``active_users``, ``feature_events``, ``minutes``, ``invites`` and ``support_tickets``.
At its contract anniversary each account decides to renew or churn, by a noisy logistic rule on
its hidden state at the time (engagement, recent trouble, sponsor); a churned account reports
nothing after its churn date, and in the weeks before it (once it means to leave) its use winds
down. New accounts ramp up over their first month.

Everything is vectorized over accounts × days and deterministic by seed, so tests, the demo
and the 50,000-account benchmark use the same generator. Writers produce the three files of a
population without a CRM: accounts (``account_id, name, start_date, plan, seats``), daily usage
in long form (``account_id, date, metric, value``) and outcomes (``account_id, churn_date,
renewal_date``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from sandbox.synthetic import SyntheticOrg, generate_org

METRICS = ("logins", "active_users", "feature_events", "minutes", "invites", "support_tickets")

# hidden behaviour per archetype: (mean engagement, chance of decay, chance of trouble-prone,
# chance the executive sponsor is engaged)
_BEHAVIOUR = {
    "healthy": (0.80, 0.12, 0.10, 0.85),
    "new_healthy": (0.75, 0.10, 0.10, 0.80),
    "declining": (0.60, 0.75, 0.45, 0.45),
    "stuck_onboarding": (0.30, 0.30, 0.30, 0.50),
    "about_to_churn": (0.50, 0.90, 0.65, 0.20),
}


@dataclass
class Population:
    """Accounts, their daily usage (NaN = no row that day) and what happened to them."""

    account_ids: list[str]
    names: list[str]
    start_dates: list[date]
    plans: list[str]
    seats: np.ndarray  # int
    first_day: date  # day 0 of the usage arrays
    usage: dict[str, np.ndarray]  # metric → accounts × days, float32, NaN = nothing reported
    churn_dates: list[date | None]
    renewal_dates: list[date | None]
    archetypes: list[str] = field(repr=False)  # hidden: for tests and curiosity only

    @property
    def days(self) -> int:
        return next(iter(self.usage.values())).shape[1] if self.usage else 0

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=self.days - 1)

    @property
    def usage_rows(self) -> int:
        return int(sum(int((~np.isnan(v)).sum()) for v in self.usage.values()))

    def usage_history(self):  # -> scoring.windows.UsageHistory (import kept out of sandbox)
        from scoring.windows import UsageHistory

        return UsageHistory.from_arrays(self.account_ids, self.first_day, self.usage)

    def churned(self) -> np.ndarray:
        return np.array([d is not None for d in self.churn_dates])


def _sponsor_and_trouble(
    rng: np.random.Generator, archetypes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    table = np.array([_BEHAVIOUR[a] for a in archetypes])
    n = len(archetypes)
    engagement = np.clip(table[:, 0] + rng.normal(0, 0.12, n), 0.08, 0.98)
    decays = rng.random(n) < table[:, 1]
    troubled = rng.random(n) < table[:, 2]
    sponsor = rng.random(n) < table[:, 3]
    return engagement, decays, troubled, sponsor


def _trouble(rng: np.random.Generator, troubled: np.ndarray, days: int) -> np.ndarray:
    """accounts × days in [0, 1]: support-trouble episodes of 2–6 weeks."""
    n = len(troubled)
    out = np.zeros((n, days), np.float32)
    episodes = np.where(troubled, rng.poisson(3.0, n), rng.poisson(0.5, n))
    for k in range(int(episodes.max(initial=0))):
        who = np.flatnonzero(episodes > k)
        start = rng.integers(-30, days, len(who))
        length = rng.integers(14, 43, len(who))
        level = rng.uniform(0.4, 1.0, len(who)).astype(np.float32)
        span = np.arange(days)
        inside = (span >= start[:, None]) & (span < (start + length)[:, None])
        out[who] = np.maximum(out[who], inside * level[:, None])
    return out


def generate_population(
    n_accounts: int | None = None,
    *,
    org: SyntheticOrg | None = None,
    seed: int = 42,
    end: date | None = None,
    days: int = 365,
    account_ids: Sequence[str] | None = None,
) -> Population:
    """Daily usage over the ``days`` days up to ``end`` (yesterday by default) for each
    account of ``org`` (or of ``generate_org(n_accounts, seed)``), with churn outcomes."""
    end = end or (datetime.now(UTC).date() - timedelta(days=1))
    if org is None:
        if n_accounts is None:
            raise ValueError("give n_accounts or an org")
        org = generate_org(
            n_accounts,
            seed=seed,
            now=datetime.combine(end, datetime.min.time(), tzinfo=UTC),
            related=False,
        )
    accounts = org.accounts
    n = len(accounts)
    ids = list(account_ids) if account_ids is not None else [f"acct-{i:06d}" for i in range(n)]
    if len(ids) != n:
        raise ValueError(f"{len(ids)} account ids for {n} accounts")
    rng = np.random.default_rng(seed)
    first = end - timedelta(days=days - 1)
    archetypes = [org.archetypes[a["Name"]] for a in accounts]
    seats = np.array([max(1, int(a["Licensed_Seats__c"])) for a in accounts])
    since = np.array([(a["Customer_Since__c"] - first).days for a in accounts])
    renewal = np.array([(a["Renewal_Date__c"] - first).days for a in accounts])
    anniversary = renewal - 365  # the contract year that ended inside the window
    anniversary = np.where(anniversary < since + 300, renewal, anniversary)  # too new: later

    engagement, decays, troubled, sponsor = _sponsor_and_trouble(rng, archetypes)
    t = np.arange(days)
    onset = anniversary - rng.integers(45, 220, n)  # decay starts months before the decision
    onset = np.where(rng.random(n) < 0.3, rng.integers(0, days, n), onset)  # or any time
    rate = np.where(decays, rng.uniform(0.002, 0.012, n), 0.0)
    since_onset = np.clip(t[None, :] - onset[:, None], 0, None)
    latent = engagement[:, None] * np.exp(-rate[:, None] * since_onset)
    trouble = _trouble(rng, troubled, days)
    latent *= 1.0 - 0.35 * trouble
    ramp = np.clip((t[None, :] - since[:, None] + 1) / 30.0, 0.0, 1.0)
    latent = np.clip(latent * np.maximum(ramp, 0.15), 0.01, 1.0).astype(np.float32)

    # the decision at the anniversary: hidden state, plus noise
    at = np.clip(anniversary - 14, 0, days - 1)
    # mean trouble over the 60 days up to the anniversary (cumulative sums, no loop)
    sums = np.zeros((n, days + 1))
    np.cumsum(trouble, axis=1, dtype=np.float64, out=sums[:, 1:])
    hi = np.clip(anniversary, -1, days - 1) + 1
    lo = np.clip(hi - 61, 0, None)
    rows = np.arange(n)
    recent = (sums[rows, hi] - sums[rows, lo]) / np.maximum(hi - lo, 1)
    logit = (
        -2.0
        + 6.0 * (0.5 - latent[np.arange(n), at])
        + 4.0 * recent
        + 0.8 * ~sponsor
        + rng.normal(0, 0.6, n)
    )
    decides = (anniversary >= 0) & (anniversary < days)
    churns = decides & (rng.random(n) < 1.0 / (1.0 + np.exp(-logit)))
    churn_day = np.where(churns, anniversary, days + 10_000)
    # once an account means to leave, it winds down: moves work elsewhere, stops inviting
    lead = rng.integers(20, 80, n)
    wind = np.clip((churn_day[:, None] - t[None, :]) / lead[:, None], 0.0, 1.0)
    latent = np.where(churns[:, None], latent * (0.35 + 0.65 * wind), latent).astype(np.float32)

    customer = (t[None, :] >= since[:, None]) & (t[None, :] <= churn_day[:, None])
    weekday = np.array([(first + timedelta(days=int(d))).weekday() for d in t])
    week = np.where(weekday >= 5, 0.3, 1.0).astype(np.float32)
    # a day with any use at all is likelier the more engaged the account (quiet weekends)
    used = rng.random((n, days), dtype=np.float32) < np.clip(1.3 * latent, 0, 0.98) * week
    noise = rng.lognormal(0, 0.25, (n, days)).astype(np.float32)
    active = rng.binomial(seats[:, None], np.clip(latent * noise, 0, 1)).astype(np.float32)
    active = np.where(used, np.maximum(active, 1), 0).astype(np.float32)
    per_user = rng.uniform(1.2, 2.0, n).astype(np.float32)
    logins = rng.poisson(active * per_user[:, None]).astype(np.float32)
    depth = rng.uniform(1.0, 6.0, n).astype(np.float32)
    features = rng.poisson(active * depth[:, None] * (0.3 + latent)).astype(np.float32)
    minutes = np.round(logins * rng.gamma(4.0, 4.0, (n, days)).astype(np.float32), 1)
    invite_rate = 0.01 * np.sqrt(seats) * np.where(sponsor, 1.4, 0.6)
    invites = rng.poisson(invite_rate[:, None] * latent * week[None, :]).astype(np.float32)
    tickets = rng.poisson(0.03 * (seats**0.25)[:, None] * (0.2 + 5.0 * trouble)).astype(np.float32)

    usage = {}
    for name, values in zip(
        METRICS, (logins, active, features, minutes, invites, tickets), strict=True
    ):
        values[~customer] = np.nan
        usage[name] = values
    day = [first + timedelta(days=int(d)) for d in range(days)]

    def when(k: int) -> date:
        return first + timedelta(days=int(k))

    return Population(
        account_ids=ids,
        names=[a["Name"] for a in accounts],
        start_dates=[a["Customer_Since__c"] for a in accounts],
        plans=[a["Plan_Tier__c"] for a in accounts],
        seats=seats,
        first_day=day[0],
        usage=usage,
        churn_dates=[when(churn_day[i]) if churns[i] else None for i in range(n)],
        renewal_dates=[
            when(anniversary[i]) if decides[i] and not churns[i] else None for i in range(n)
        ],
        archetypes=archetypes,
    )


# -- files ---------------------------------------------------------------------------------------
def write_accounts_csv(pop: Population, path: str | Path) -> Path:
    """``account_id, name, start_date, plan, seats``."""
    p = Path(path)
    with p.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["account_id", "name", "start_date", "plan", "seats"])
        for row in zip(
            pop.account_ids, pop.names, pop.start_dates, pop.plans, pop.seats.tolist(), strict=True
        ):
            out.writerow([row[0], row[1], row[2].isoformat(), row[3], row[4]])
    return p


def write_outcomes_csv(pop: Population, path: str | Path) -> Path:
    """``account_id, churn_date, renewal_date`` for every account (blank: none)."""
    p = Path(path)
    with p.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["account_id", "churn_date", "renewal_date"])
        for account_id, churn, renewal in zip(
            pop.account_ids, pop.churn_dates, pop.renewal_dates, strict=True
        ):
            out.writerow(
                [
                    account_id,
                    churn.isoformat() if churn else "",
                    renewal.isoformat() if renewal else "",
                ]
            )
    return p


def write_usage_csv(pop: Population, path: str | Path, *, zeros: bool = False) -> int:
    """Long form ``account_id, date, metric, value``, one row per reported day (days with 0
    only with ``zeros``: a usage export usually has no row for a day without activity).
    Returns the rows written."""
    dates = np.array(
        [(pop.first_day + timedelta(days=d)).isoformat() for d in range(pop.days)], dtype=object
    )
    ids = np.array(pop.account_ids, dtype=object)
    written = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        handle.write("account_id,date,metric,value\n")
        for metric, values in pop.usage.items():
            keep = ~np.isnan(values) if zeros else (values > 0)
            rows, days = np.nonzero(keep)
            picked = values[rows, days]
            text = [
                f"{a},{d},{metric},{v:g}\n"
                for a, d, v in zip(ids[rows], dates[days], picked.tolist(), strict=True)
            ]
            handle.writelines(text)
            written += len(text)
    return written


# -- the example scorecard, extended with usage windows (the demo's backtest card) -------------
USAGE_DERIVED = {
    "usage_logins_30d": {"window": {"metric": "logins", "agg": "sum", "within": "30d"}},
    "usage_logins_per_seat": {"ratio": ["usage_logins_30d", "seats"]},
    "usage_login_change": {
        "window": {"metric": "logins", "agg": "sum", "within": "30d", "vs_previous": True}
    },
    "usage_active_days_30d": {
        "window": {"metric": "logins", "agg": "active_days", "within": "30d"}
    },
    "usage_peak_users_30d": {"window": {"metric": "active_users", "agg": "max", "within": "30d"}},
    "usage_seat_utilization": {"ratio": ["usage_peak_users_30d", "seats"]},
    "usage_invites_90d": {"window": {"metric": "invites", "agg": "sum", "within": "90d"}},
    "usage_tickets_30d": {"window": {"metric": "support_tickets", "agg": "sum", "within": "30d"}},
}
USAGE_MEASURES = {
    "usage_seat_utilization": {
        "label": "Peak seat utilization (30d, usage)",
        "group": "deployment",
        "weight": 6,
        "metric": "usage_seat_utilization",
        "linear": {"from": 0.2, "to": 0.8},
        "unit": "%",
    },
    "usage_invites": {
        "label": "Member invites (90d)",
        "group": "deployment",
        "weight": 1,
        "metric": "usage_invites_90d",
        "linear": {"from": 0, "to": 3},
    },
    "usage_active_days": {
        "label": "Active days (30d)",
        "group": "engagement",
        "weight": 6,
        "metric": "usage_active_days_30d",
        "linear": {"from": 8, "to": 22},
    },
    "usage_login_trend": {
        "label": "Logins vs prior 30 days (usage)",
        "group": "engagement",
        "weight": 3,
        "metric": "usage_login_change",
        "linear": {"from": -40, "to": 0},
        "unit": "pct",
    },
    "usage_logins_per_seat": {
        "label": "Logins per seat (30d, usage)",
        "group": "adoption",
        "weight": 5,
        "metric": "usage_logins_per_seat",
        "linear": {"from": 3, "to": 25, "log": True},
        "unit": "x",
    },
    "usage_tickets": {
        "label": "Support tickets (30d)",
        "group": "roi",
        "weight": 9,
        "metric": "usage_tickets_30d",
        "better": "lower",
        "linear": {"from": 1, "to": 8},
    },
}


def with_usage_measures(doc: dict, *, seats_field: str = "Licensed_Seats__c") -> dict:
    """A configuration (YAML data, e.g. the packaged example) whose scorecard also reads the
    usage windows above.

    Licensed seats become an account attribute ``seats`` (from ``seats_field`` on the
    Salesforce Account): attributes are taken as they are now, so the per-seat measures have a
    denominator at every past snapshot — a signal first synced today would be missing there.
    """
    out = dict(doc)
    sources = dict(out.get("sources", {}))
    salesforce = dict(sources.get("salesforce", {}))
    salesforce["attributes"] = {**salesforce.get("attributes", {}), "seats": seats_field}
    sources["salesforce"] = salesforce
    out["sources"] = sources
    card = dict(out["scorecard"])
    card["name"] = f"{card.get('name', 'default')}+usage"
    card["derived"] = {**card.get("derived", {}), **USAGE_DERIVED}
    card["measures"] = {**card.get("measures", {}), **USAGE_MEASURES}
    out["scorecard"] = card
    return out
