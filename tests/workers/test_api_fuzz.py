"""Fuzzing the API from its own OpenAPI document (schemathesis, a bounded number of examples per
operation, SQLite and PostgreSQL): with a valid token, no 5xx and no answer that breaks the spec."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests.workers.test_api import served
from workers.api_spec import document

pytestmark = [pytest.mark.slow]

EXAMPLES = 25
# Every check but two, which judge what is accepted rather than whether an answer keeps to the
# document: a body can be schema-valid and still refused for what no schema says (a file that
# no row names), and a row that breaks the schema is answered 202 as a rejected row, as ingest
# records one, not refused whole.
NOT_CHECKED = [positive_data_acceptance, negative_data_rejection]


schemathesis.serializer.alias("application/x-ndjson", "text/plain")  # JSON Lines: a string, sent as it is
# The document the API serves (test_api checks /v1/openapi.json is it); the server's address is
# known only once a test runs, so each call names it.
schema = schemathesis.openapi.from_dict(document())


@pytest.fixture
def api(database_url, redis_url):
    with served() as client:
        yield client


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_document(case, api):
    case.call_and_validate(base_url=api.url("/").rstrip("/"), headers=api.headers(), excluded_checks=NOT_CHECKED)
