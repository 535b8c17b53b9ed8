"""HubSpot CSM tasks: one batch create per 100 tasks, each with its company association inline
(no second request), exactly once on the key — through the pipeline's delivery against the
HubSpot emulator, which stores the inline associations and refuses a bad one as HubSpot does."""

from __future__ import annotations

from pathlib import Path

import pytest
from hubspot.crm.objects.tasks.exceptions import ApiException

from connectors.hubspot.csm_tasks import ensure_task_key_property
from healthscore.pipeline.cycle import Pipeline
from sandbox import HubSpotEmulator, SlackEmulator, generate_org
from sandbox.demo.run_demo import hubspot_record_config
from sandbox.wire import Request, Response
from store import Store
from tests.actions_helpers import NOW, config_with
from tests.conftest import fast_config, fast_hubspot_client, hubspot_record_settings
from tests.test_delivery_batches import HS_CREATES, TASKS, add_tasks, hubspot_tasks, statuses

__all__ = ["hubspot_tasks"]
LINK = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}


def test_250_tasks_take_3_requests_with_their_associations_inline(
    hubspot_tasks: tuple[HubSpotEmulator, Pipeline, Store],
) -> None:
    hs, pipeline, store = hubspot_tasks
    companies = hs.seed(generate_org(250, seed=301, now=NOW))
    keys = add_tasks(store, companies)
    pipeline.action_channels()  # the owners are read once, when the back end is built
    hs.clear_log()

    report = pipeline.deliver()

    assert report.tasks_created == 250 and report.failed == report.unknown == 0
    assert len(hs.requests()) == 3  # ⌈250/100⌉, and nothing else
    creates = hs.requests("POST", HS_CREATES)
    assert [len(r.body["inputs"]) for r in creates] == [100, 100, 50]
    for item in (i for r in creates for i in r.body["inputs"]):
        company = item["properties"]["healthscore_key"].split(":")[1]
        assert item["associations"] == [{"to": {"id": company}, "types": [LINK]}]
    log = statuses(store, keys)
    for task in hs.records("tasks"):
        key = task["properties"]["healthscore_key"]
        assert hs.associations("tasks", task["id"], "companies") == [key.split(":")[1]]
        assert (log[key].status, log[key].response_id) == ("sent", task["id"])


def test_a_task_already_written_is_recorded_not_created_twice(
    hubspot_tasks: tuple[HubSpotEmulator, Pipeline, Store],
) -> None:
    """A task that exists with the key (written by a run whose record was lost) answers the
    create with a 409: it is adopted as delivered, the rest go in one more request."""
    hs, pipeline, store = hubspot_tasks
    companies = hs.seed(generate_org(5, seed=302, now=NOW))
    keys = add_tasks(store, companies)
    earlier = pipeline.client("hubspot").sdk.crm.objects.tasks.basic_api.create(
        simple_public_object_input_for_create={
            "properties": {
                "hs_timestamp": "2026-01-01T00:00:00Z",
                "hs_task_subject": "written earlier",
                "healthscore_key": keys[2],
            },
            "associations": [{"to": {"id": companies[2]}, "types": [LINK]}],
        }
    )
    pipeline.action_channels()
    hs.clear_log()

    report = pipeline.deliver()

    creates = hs.requests("POST", HS_CREATES)
    assert [(r.status, len(r.body["inputs"])) for r in creates] == [(409, 5), (201, 4)]
    tasks = [t for t in hs.records("tasks") if t["properties"].get("healthscore_key")]
    assert sorted(t["properties"]["healthscore_key"] for t in tasks) == sorted(keys)  # once each
    log = statuses(store, keys)
    assert {a.status for a in log.values()} == {"sent"}
    assert log[keys[2]].response_id == earlier.id
    assert report.tasks_created == 5 and report.failed == 0


def test_the_emulator_refuses_a_bad_inline_association_and_writes_nothing(
    hubspot_tasks: tuple[HubSpotEmulator, Pipeline, Store],
) -> None:
    hs, pipeline, _ = hubspot_tasks
    companies = hs.seed(generate_org(2, seed=303, now=NOW))
    batch_api = pipeline.client("hubspot").sdk.crm.objects.tasks.batch_api

    def create(to: str, type_id: int) -> None:
        batch_api.create(
            batch_input_simple_public_object_batch_input_for_create={
                "inputs": [
                    {
                        "properties": {"hs_timestamp": "2026-01-01T00:00:00Z"},
                        "associations": [{"to": {"id": companies[0]}, "types": [LINK]}],
                    },
                    {
                        "properties": {"hs_timestamp": "2026-01-01T00:00:00Z"},
                        "associations": [
                            {
                                "to": {"id": to},
                                "types": [{**LINK, "associationTypeId": type_id}],
                            }
                        ],
                    },
                ]
            }
        )

    for to, type_id, why in (
        ("99999999", 192, "companies 99999999 does not exist"),
        (companies[1], 9999, "association type 9999 is not valid for tasks"),
    ):
        with pytest.raises(ApiException) as refused:
            create(to, type_id)
        assert refused.value.status == 400 and why in str(refused.value.body)
    assert hs.records("tasks") == []  # the batch is refused whole
    create(companies[1], 192)
    assert [hs.associations("tasks", t["id"], "companies") for t in hs.records("tasks")] == [
        [companies[0]],
        [companies[1]],
    ]


class TerseConflicts(HubSpotEmulator):
    """HubSpot whose 409 for a taken unique value names neither the value nor the task."""

    def dispatch(self, req: Request) -> tuple[Response, str | None]:
        response, fault = super().dispatch(req)
        if response.status == 409 and isinstance(response.body, dict):
            body = {**response.body, "message": "Duplicate value for a unique property"}
            response = Response(409, body, response.headers)
        return response, fault


def test_a_409_that_names_no_task_is_resolved_by_a_search_on_the_key(
    tmp_path: Path, slack_emu: SlackEmulator
) -> None:
    with TerseConflicts(search_per_second=1000, requests_per_10s=10_000) as hs:
        settings = hubspot_record_settings(hs, slack_emu, tmp_path / "hs.db")
        store = Store(settings.database_url)
        config = hubspot_record_config(fast_config(), hs.portal_id)
        config = config.model_copy(update={"rules": config_with(TASKS).rules})
        pipeline = Pipeline(config, settings, store, hubspot=fast_hubspot_client(settings))
        assert ensure_task_key_property(pipeline.client("hubspot"))
        companies = hs.seed(generate_org(4, seed=304, now=NOW))
        keys = add_tasks(store, companies)
        earlier = pipeline.client("hubspot").sdk.crm.objects.tasks.basic_api.create(
            simple_public_object_input_for_create={
                "properties": {"hs_timestamp": "2026-01-01T00:00:00Z", "healthscore_key": keys[1]},
                "associations": [{"to": {"id": companies[1]}, "types": [LINK]}],
            }
        )

        report = pipeline.deliver()

        log = statuses(store, keys)
        assert {a.status for a in log.values()} == {"sent"} and report.failed == 0
        assert log[keys[1]].response_id == earlier.id  # found by the key, not created again
        assert len(hs.requests("POST", r"/objects/tasks/search$")) == 1
        tasks = [t for t in hs.records("tasks") if t["properties"].get("healthscore_key")]
        assert sorted(t["properties"]["healthscore_key"] for t in tasks) == sorted(keys)
        store.close()
