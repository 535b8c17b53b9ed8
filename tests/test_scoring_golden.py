"""The shipped default scorecard on accounts computed by hand (the arithmetic is spelled out)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from healthscore.config import load_config
from scoring import explain, score

from .scoring_helpers import AS_OF, table

CARD = load_config().scorecard


def days_ago(n: float) -> float:
    return (AS_OF - timedelta(days=n)).timestamp()


ADOPTED = {  # a Growth customer for 400 days, every field present
    "licensed_seats": 100,
    "active_users_30d": 50,
    "onboarding_complete": 1,
    "last_login_at": days_ago(8),
    "logins_30d": 900,
    "logins_prev_30d": 1000,
    "last_csm_touch_at": days_ago(52),
    "feature_adoption_pct": 35,
    "nps": 8,
    "urgent_open_cases": 1,
    "exec_meetings_90d": 1,
    "customer_since": days_ago(400),
    "plan_tier": "Growth",
}
ONBOARDING = {  # a Starter customer for 30 days, stuck
    "licensed_seats": 10,
    "active_users_30d": 2,
    "onboarding_complete": 0,
    "last_login_at": days_ago(20),
    "logins_30d": 20,
    "logins_prev_30d": 0,
    "last_csm_touch_at": days_ago(10),
    "feature_adoption_pct": 10,
    "nps": None,
    "urgent_open_cases": 0,
    "exec_meetings_90d": 0,
    "customer_since": days_ago(30),
    "plan_tier": "Starter",
}
ENTERPRISE_NO_NPS = {**ADOPTED, "plan_tier": "Enterprise", "nps": None, "exec_meetings_90d": 0}
ALMOST_EMPTY = {"licensed_seats": 10, "customer_since": days_ago(400), "plan_tier": "Growth"}


@pytest.fixture(scope="module")
def batch():
    return score(CARD, table([ADOPTED, ONBOARDING, ENTERPRISE_NO_NPS, ALMOST_EMPTY]), AS_OF)


def test_adopted_account(batch) -> None:
    seat = 50  # 50 % utilization: the 30–60 % band
    onboarding = 100
    login = (1 - (8 - 3) / (30 - 3)) * 100  # 8 days since login, lower is better 3 → 30
    trend = (-10 + 50) / 50 * 100  # logins −10 % vs prior window, −50 → 0
    touch = (1 - (52 - 14) / (90 - 14)) * 100
    adoption = (35 - 10) / 50 * 100
    per_seat = math.log(9) / math.log(15) * 100  # 9 logins per seat on a log scale 1 → 15
    nps = (8 - 4) / 5 * 100
    gap = 100  # adoption 50 points − NPS 80 points = −30: no divergence
    urgent = (1 - 1 / 3) * 100
    exec_ = 50
    groups = {
        "deployment": (3 * seat + onboarding) / 4,
        "engagement": (2 * login + 2 * trend + touch) / 5,
        "adoption": (2 * adoption + per_seat) / 3,
        "roi": (2 * nps + gap + urgent + exec_) / 5,
    }
    expected = (
        20 * groups["deployment"]
        + 25 * groups["engagement"]
        + 35 * groups["adoption"]
        + 20 * groups["roi"]
    ) / 100
    assert batch.score[0] == pytest.approx(expected)
    assert round(expected) == 67 and batch.grade[0] == "yellow"
    assert {g: v[0] for g, v in batch.groups.items()} == pytest.approx(groups)
    assert batch.coverage[0] == 1.0
    assert batch.segment_name(0) == "default"
    reasons = [str(r) for r in explain(batch, 0).reasons]
    # feature adoption: 2/3 of adoption (35 %) × 50 points lost = 11.7 points;
    # seat utilization: 3/4 of deployment (20 %) × 50 points lost = 7.5 points
    assert reasons[:2] == ["Feature adoption 35% (−12)", "Seat utilization 50% (−8)"]


def test_onboarding_account_uses_the_onboarding_weights(batch) -> None:
    login = (1 - (20 - 3) / 27) * 100
    per_seat = math.log(2) / math.log(15) * 100
    groups = {
        "deployment": 0.0,  # seat utilization 20 % → 0 (weight 3), onboarding not done (4)
        "engagement": (2 * login + 1 * 100) / 3,  # trend is off while onboarding
        "adoption": (2 * 0 + per_seat) / 3,  # feature adoption at 10 % → 0
        "roi": 100.0,  # no urgent cases; NPS, gap and exec meetings are off
    }
    expected = (
        20 * groups["deployment"]
        + 25 * groups["engagement"]
        + 35 * groups["adoption"]
        + 20 * groups["roi"]
    ) / 100
    assert batch.segment_name(1) == "onboarding"
    assert batch.score[1] == pytest.approx(expected)
    assert batch.grade[1] == "red" and batch.coverage[1] == pytest.approx(1.0)
    # lost: feature adoption 35 % × 2/3 × 100 = 23.3; onboarding 20 % × 4/7 × 100 = 11.4;
    # last login 25 % × 2/3 × (100 − 37.0) = 10.5 (seat utilization's 8.6 is fourth)
    assert [(r.measure, round(r.points_lost, 1)) for r in explain(batch, 1).reasons] == [
        ("feature_adoption", 23.3),
        ("onboarding", 11.4),
        ("last_login", 10.5),
    ]


def test_enterprise_missing_nps_redistributes_within_roi(batch) -> None:
    urgent = (1 - 1 / 3) * 100
    # NPS missing → the NPS gap is missing too; urgent (1) and exec meetings (3 here) remain
    roi = (urgent * 1 + 0 * 3) / 4
    assert batch.segment_name(2) == "enterprise"
    assert batch.groups["roi"][2] == pytest.approx(roi)
    # nominal roi weights 2+1+1+3 = 7, of which 3 are missing: 20 % × 3/7 of the weight
    assert batch.coverage[2] == pytest.approx(1 - 0.2 * 3 / 7)


def test_almost_empty_account_is_insufficient_data(batch) -> None:
    assert batch.grade[3] == "insufficient_data"
    assert math.isnan(batch.score[3]) and batch.coverage[3] < CARD.coverage_floor
