"""v4 batch default associations of the HubSpot emulator
(``POST /crm/v4/associations/{from}/{to}/batch/associate/default``).

A mixin of :class:`sandbox.hubspot.HubSpotEmulator` (routes are collected through the MRO). The
CSM tasks associate up to 100 tasks with their companies in one request here, instead of one
``PUT`` per task.
"""

from __future__ import annotations

from typing import Any

from sandbox.hubspot_errors import validation_error
from sandbox.hubspot_objects import json_object, object_type
from sandbox.hubspot_schema import ASSOCIATION_TYPES, iso_from_ms
from sandbox.hubspot_store import HubSpotStore
from sandbox.server import route
from sandbox.wire import Request, Response


class AssociationBatchRoutes:
    """Batch default associations (state lives in ``self._store``)."""

    _store: HubSpotStore
    batch_limit: int

    @route("POST", r"/crm/v4/associations/(?P<type>[^/]+)/(?P<to>[^/]+)/batch/associate/default/?")
    def _associate_default_batch(self, req: Request) -> Response:
        """v4 batch default associations: 200 with both directions of each pair made; a pair
        naming a missing object is an error of its own (207), the others are still made."""
        from_type, to_type = (
            object_type(req.path_params["type"]),
            object_type(req.path_params["to"]),
        )
        if (from_type, to_type) not in ASSOCIATION_TYPES:
            raise validation_error(f"{from_type} can't be associated with {to_type}")
        inputs = json_object(req).get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise validation_error("inputs must be a non-empty array")
        if len(inputs) > self.batch_limit:
            raise validation_error(f"Batch input is limited to {self.batch_limit} inputs")
        type_id = ASSOCIATION_TYPES[(from_type, to_type)][0]
        back = ASSOCIATION_TYPES[(to_type, from_type)][0]
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        with self._store.lock:
            stamp = iso_from_ms(self._store.now_ms())
            for item in inputs:
                from_id = str(((item or {}).get("from") or {}).get("id") or "")
                to_id = str(((item or {}).get("to") or {}).get("id") or "")
                missing = [
                    (t, i)
                    for t, i in ((from_type, from_id), (to_type, to_id))
                    if self._store.get(t, i) is None
                ]
                if missing:
                    errors.append(
                        {
                            "status": "error",
                            "category": "OBJECT_NOT_FOUND",
                            "message": "Object not found: "
                            + ", ".join(f"{t} {i}" for t, i in missing),
                            "context": {"fromObjectId": [from_id], "toObjectId": [to_id]},
                        }
                    )
                    continue
                self._store.associate(from_type, from_id, to_type, to_id, type_id)
                results += [
                    {
                        "from": {"id": a},
                        "to": {"id": b},
                        "associationSpec": {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": n,
                        },
                    }
                    for a, b, n in ((from_id, to_id, type_id), (to_id, from_id, back))
                ]
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": stamp,
            "completedAt": stamp,
        }
        if errors:
            body.update({"numErrors": len(errors), "errors": errors})
            return Response(207, body)
        return Response(200, body)
