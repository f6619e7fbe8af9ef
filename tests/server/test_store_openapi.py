"""Schemathesis drives the served OpenAPI document against the app: no 5xx, responses conform."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from omega.mailbox import MemoryBackend, StoreConfig, StoreService
from omega.server.store.app import create_app

_SERVICE = StoreService(
    MemoryBackend(), config=StoreConfig(request_burst=1_000_000, max_wait_seconds=1)
)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_SERVICE, run_sweeper=False))


@schema.parametrize()
@settings(max_examples=8, suppress_health_check=list(HealthCheck))
def test_the_api_honours_its_openapi_document(case: schemathesis.Case) -> None:
    # Signatures and certificates cannot be expressed in a schema, so schema-valid
    # bodies may still be refused: every other check runs.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
