"""A card with a churn model, through whole cycles against the emulators: the probability of
the stored score (and ARR at risk) lands in Salesforce, HubSpot, Slack alerts, digests and
`explain`; a card without one writes no churn field."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from rich.console import Console

from actions import Rule
from connectors.hubspot import ensure_properties
from connectors.registry import enabled, source
from connectors.salesforce import check_fields
from healthscore.cli.explain_view import render_explanation
from healthscore.config import Config
from healthscore.core.errors import ConfigError
from healthscore.pipeline.cycle import Pipeline
from sandbox import HubSpotEmulator, SalesforceEmulator, SlackEmulator, generate_org
from scoring.churn_model import ChurnModel, half_up
from store.models import utcnow
from tests.conftest import hubspot_config

NOW = datetime.now(UTC)
MODEL = ChurnModel.model_validate(
    {
        "horizon": "30d",
        "intercept": 2.0,
        "slope": -0.07,
        "fitted_on": {"rows": 900, "churned": 120, "from": "2026-05-01", "to": "2026-09-01"},
        "arr_attribute": "arr",
    }
)
DIGEST = {
    "name": "at_risk",
    "when": {"score_below": 100},  # about every scored account: the digest lists them
    "actions": [{"slack": {"digest": "daily", "channel": "C0CSALERTS"}}],
}
CHURN_FIELDS = ("Health_Churn_Risk__c", "Health_ARR_at_Risk__c")
CHURN_PROPERTIES = ("healthscore_churn_risk", "healthscore_arr_at_risk")


def with_model(model: ChurnModel | None, *rules: dict[str, object]) -> Config:
    config = hubspot_config()
    card = config.scorecard.model_copy(update={"churn_model": model})
    return config.model_copy(
        update={"scorecard": card, "rules": [Rule.model_validate(r) for r in rules]}
    )


def setup_crm(pipeline: Pipeline) -> list[str]:
    """What `healthscore setup-crm` does: each enabled CRM's setup step."""
    lines = []
    for entry in enabled(pipeline.config.sources):
        if entry.crm is not None and entry.crm.setup is not None:
            lines += entry.crm.setup(pipeline.context, pipeline.config, False)
    return lines


def seed(sf_emu: SalesforceEmulator, hs_emu: HubSpotEmulator, n: int, s: int) -> list[str]:
    org = generate_org(n, seed=s, now=NOW)
    ids = sf_emu.seed(org)
    hs_emu.seed(org, account_ids=ids)
    return ids


def companies(hs_emu: HubSpotEmulator) -> dict[str, dict[str, str]]:
    """Account id → the company's properties."""
    return {
        c["properties"]["salesforce_account_id"]: c["properties"]
        for c in hs_emu.records("companies")
    }


def test_the_cycle_writes_the_probability_of_the_stored_score_everywhere(
    sf_emu: SalesforceEmulator,
    hs_emu: HubSpotEmulator,
    slack_emu: SlackEmulator,
    hs_pipeline: Callable[..., Pipeline],
) -> None:
    ids = seed(sf_emu, hs_emu, 40, 31)
    config = with_model(MODEL, DIGEST)
    pipeline = hs_pipeline(config)
    assert any("healthscore_churn_risk" in line for line in setup_crm(pipeline))
    first = pipeline.run_cycle()
    assert first.writes["hubspot"].records_updated == 40

    latest = pipeline.store.scores_as_of(utcnow())
    held = companies(hs_emu)
    accounts = {a.id: a for a in pipeline.store.accounts()}
    checked = 0
    for account_id in ids:
        score = latest[account_id]
        record = sf_emu.record("Account", account_id)
        if score.score is None:
            assert score.churn_probability is None and record["Health_Churn_Risk__c"] is None
            continue
        p = float(MODEL.probability(score.score))
        assert score.churn_probability == pytest.approx(p, rel=1e-12)
        arr = float(accounts[account_id].attributes["arr"])
        assert score.arr_at_risk == pytest.approx(p * arr, rel=1e-12)
        assert record["Health_Churn_Risk__c"] == half_up(100 * p, 1)
        assert record["Health_ARR_at_Risk__c"] == half_up(p * arr, 0)
        assert float(held[account_id]["healthscore_churn_risk"]) == half_up(100 * p, 1)
        assert float(held[account_id]["healthscore_arr_at_risk"]) == half_up(p * arr, 0)
        checked += 1
    assert checked >= 30

    # a Slack alert for each account that entered red carries its churn risk
    red = [a for a in ids if latest[a].grade == "red"]
    assert red and first.scoring.entered_red == len(red)
    alerts = [m for m in slack_emu.messages if "matched rule" not in m["text"]]
    assert len(alerts) == len(red)
    for message in alerts:
        blocks = json.dumps(message["blocks"], ensure_ascii=False)
        assert re.search(r"Churn risk: \d+\.\d% within 30d \(ARR at risk [\d,]+\)", blocks)
    # the digest lists every account, the most ARR at risk first
    digests = [m for m in slack_emu.messages if "matched rule at_risk" in m["text"]]
    assert len(digests) == 1
    text = "\n".join(b["text"]["text"] for b in digests[0]["blocks"][1:])
    at_risk = [float(x.replace(",", "")) for x in re.findall(r"ARR at risk ([\d,]+)\)", text)]
    assert len(at_risk) >= 30 and at_risk == sorted(at_risk, reverse=True)
    top = max(
        (a for a in ids if latest[a].arr_at_risk is not None), key=lambda a: latest[a].arr_at_risk
    )
    assert f"/Account/{top}/view" in text.splitlines()[0]
    assert "<!channel>" not in text  # names are escaped as in every digest

    # explain shows the same probability
    name = accounts[ids[0]].name
    found, exp = pipeline.explain(ids[0])
    assert found.id == ids[0] and exp.churn_horizon_days == 30
    assert exp.churn_probability == pytest.approx(latest[ids[0]].churn_probability, rel=1e-12)
    console = Console(record=True, width=200)
    render_explanation(console, name, exp, config.scorecard)
    shown = f"churn risk: {100 * exp.churn_probability:.1f} % within 30 days (ARR at risk "
    assert shown in console.export_text()

    # nothing changed: the next cycle writes no churn field again (what the CRMs hold is
    # what was written, to the decimal)
    second = hs_pipeline(config).run_cycle()
    assert second.writes["crm"].records_updated == 0
    assert second.writes["hubspot"].records_updated == 0


def test_a_card_without_a_churn_model_writes_and_shows_no_probability(
    sf_emu: SalesforceEmulator,
    hs_emu: HubSpotEmulator,
    slack_emu: SlackEmulator,
    hs_pipeline: Callable[..., Pipeline],
) -> None:
    ids = seed(sf_emu, hs_emu, 20, 32)
    pipeline = hs_pipeline(with_model(None, DIGEST))
    setup_crm(pipeline)
    pipeline.run_cycle()
    for name in CHURN_PROPERTIES:  # setup-crm made none of them
        with pytest.raises(KeyError):
            hs_emu.get_property("companies", name)
    writes = [fields for _, fields in sf_emu.write_history]
    assert writes and not any(f in w for w in writes for f in CHURN_FIELDS)
    soql = " ".join(json.dumps(r.query) for r in sf_emu.requests("GET", r"/query"))
    assert "Health_Churn_Risk__c" not in soql
    assert all(s.churn_probability is None for s in pipeline.store.scores_as_of(utcnow()).values())
    everything = json.dumps([m["blocks"] for m in slack_emu.messages])
    assert slack_emu.messages and "hurn risk" not in everything
    _, exp = pipeline.explain(ids[0])
    assert exp.churn_probability is None and exp.churn_horizon_days is None


def test_without_an_arr_attribute_only_the_probability_is_written(
    sf_emu: SalesforceEmulator,
    hs_emu: HubSpotEmulator,
    slack_emu: SlackEmulator,
    hs_pipeline: Callable[..., Pipeline],
) -> None:
    ids = seed(sf_emu, hs_emu, 20, 33)
    model = MODEL.model_copy(update={"arr_attribute": None})
    pipeline = hs_pipeline(with_model(model, DIGEST))
    setup_crm(pipeline)
    pipeline.run_cycle()
    record = sf_emu.record("Account", ids[0])
    latest = pipeline.store.scores_as_of(utcnow())[ids[0]]
    assert record["Health_Churn_Risk__c"] == half_up(
        100 * float(MODEL.probability(latest.score)), 1
    )
    assert record["Health_ARR_at_Risk__c"] is None and latest.arr_at_risk is None
    with pytest.raises(KeyError):
        hs_emu.get_property("companies", "healthscore_arr_at_risk")
    # the digest is ordered by probability, most likely to churn first
    digest = next(m for m in slack_emu.messages if "matched rule at_risk" in m["text"])
    text = "\n".join(b["text"]["text"] for b in digest["blocks"][1:])
    risk = [float(x) for x in re.findall(r"churn risk (\d+\.\d)% within 30d\)", text)]
    assert len(risk) >= 15 and risk == sorted(risk, reverse=True)
    assert not math.isnan(risk[0])


def test_check_verifies_the_churn_properties_only_with_a_churn_model(
    hs_emu: HubSpotEmulator, hs_pipeline: Callable[..., Pipeline]
) -> None:
    """`healthscore check` on HubSpot: an existing deployment (no churn model) passes without
    the churn properties; a card with one names them until `setup-crm` creates them."""
    check = source("hubspot").check
    assert check is not None
    plain = hs_pipeline(with_model(None))
    ensure_properties(plain.client("hubspot"), plain.config.sources.hubspot.write_back)
    assert "HubSpot company properties present" in check(plain.context)
    churn = hs_pipeline(with_model(MODEL))
    with pytest.raises(ConfigError, match="healthscore_churn_risk, healthscore_arr_at_risk"):
        check(churn.context)
    assert setup_crm(churn)
    assert "HubSpot company properties present" in check(churn.context)


def test_salesforce_check_names_the_churn_fields_to_create_only_with_a_churn_model(
    sf_emu: SalesforceEmulator, hs_pipeline: Callable[..., Pipeline]
) -> None:
    pipeline = hs_pipeline(with_model(MODEL))
    describe = pipeline.client("salesforce").describe("Account")
    describe["fields"] = [f for f in describe["fields"] if f["name"] not in CHURN_FIELDS]
    section = pipeline.config.sources.salesforce
    check_fields(describe, section, "healthscore.yaml")  # no churn model: not needed
    with pytest.raises(ConfigError) as err:
        check_fields(describe, section, "healthscore.yaml", MODEL.crm_roles())
    assert "Health_Churn_Risk__c  (Percent(3, 1))" in str(err.value)
    assert "Health_ARR_at_Risk__c  (Currency(16, 2))" in str(err.value)
