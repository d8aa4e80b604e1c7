"""schemathesis against the service's own OpenAPI: generated requests (valid and invalid) to
every operation, with and without the admin token, never get a 5xx."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from fakes import FakeEngine
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from serve_support import ADMIN_HEADERS, settings_for

from shelfrank.serve.app import create_app
from shelfrank.serve.metrics import ServiceMetrics
from shelfrank.serve.service import EngineSource, start_service

_DATA = Path(tempfile.mkdtemp(prefix="shelfrank-fuzz-"))
_SETTINGS = settings_for(_DATA, max_batch_events=3)
_SERVICE = start_service(_SETTINGS, lambda s: EngineSource(FakeEngine()), ServiceMetrics(), durable=False)
APP = create_app(_SETTINGS, service=_SERVICE)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.mark.filterwarnings("ignore")
@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case):
    case.call_and_validate(headers=ADMIN_HEADERS, checks=[not_a_server_error])
