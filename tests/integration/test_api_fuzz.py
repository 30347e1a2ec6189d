"""Whatever a client sends, the answer is 200 or a 4xx envelope: never a 500 or a traceback."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdr_reporting.api.schemas import ErrorEnvelope, V1Request, V2Envelope
from mdr_reporting.domain.requests import V1_FIELDS
from tests.conftest import Api

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "2024-02-21T00:00:00Z",
            "2024-02-21T00:00:00",
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-05:00",
            "America/Chicago",
            "inbound",
            "OUTBOUND",
            "starts_with",
            "csv.gz",
            '{"filter_type": "and", "cli": "1", "cli_filter": "contains"}',
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["filter_type", "cli", "cli_filter", "cld", "cld_filter", "tags_list"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
bodies = st.dictionaries(
    st.sampled_from(sorted(V1_FIELDS)) | st.text(max_size=8), json_values, max_size=8
).map(lambda d: {"start_time": "2024-02-21T00:00:00Z", **d} if len(d) % 2 else d)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_random_bodies_never_crash_either_surface(api: Api, body: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {api.key()}"}
    for path, model in (
        ("/reporting/mdr_requests", V1Request),
        ("/v2/legacy/reporting/batch_detail_records/messaging", V2Envelope),
    ):
        response = api.client.post(path, json=body, headers=headers)
        assert response.status_code in (200, 400, 403), response.text
        if response.status_code == 200:
            model.model_validate(response.json())
            # a stored request must render again on GET, whatever it holds
            created = response.json().get("data", response.json())
            again = api.client.get(f"{path}/{created['id']}", headers=headers)
            assert again.status_code == 200
        else:
            ErrorEnvelope.model_validate(response.json())
