"""Property-based API test: Schemathesis generates requests from the OpenAPI document (valid
and invalid parameters, with a valid token) and no response may be a server error.

Driven through Schemathesis' strategies and Hypothesis directly: its pytest plugin does not run
under pytest 9.
"""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings

from api.security import mint_token
from tests.api.conftest import LiveServer


def test_no_server_errors(live: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    token = mint_token(live.settings, "acme", None, 3600)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    seen: dict[str, set[int]] = {}

    def probe(operation: schemathesis.APIOperation) -> None:
        @given(case=operation.as_strategy())
        @settings(
            max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def no_server_error(case: schemathesis.Case) -> None:
            headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
            response = case.call(base_url=live.url, headers=headers)
            seen.setdefault(operation.label, set()).add(response.status_code)
            assert response.status_code < 500, (
                operation.label,
                case.path_parameters,
                case.query,
                case.body,
                response.text[:300],
            )

        no_server_error()

    for operation in operations:
        probe(operation)

    # The generator reached the routes' real answers, not only their refusals.
    assert any(200 in codes for codes in seen.values())
    assert httpx.get(f"{live.url}/healthz").status_code == 200
