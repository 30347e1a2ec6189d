"""/openapi.json describes the real shapes and codes; /docs renders with no internet access."""

from __future__ import annotations

import re

from tests.conftest import Api

V1 = "/reporting/mdr_requests"
V2 = "/v2/legacy/reporting/batch_detail_records/messaging"


def test_openapi_describes_bodies_responses_and_every_status_code(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert {"V1CreateBody", "V2CreateBody", "V1Request", "V2Envelope", "ErrorEnvelope"} <= set(
        schemas
    )
    assert schemas["V1CreateBody"]["additionalProperties"] is False
    assert "start_time" in schemas["V1CreateBody"]["required"]
    create = document["paths"][V1]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/V1CreateBody"}
    assert set(create["responses"]) == {"200", "400", "401", "403", "404", "409", "413", "429"}
    error_schema = create["responses"]["400"]["content"]["application/json"]["schema"]
    assert error_schema == {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert set(document["paths"][f"{V1}/{{request_id}}"]) == {"get", "delete"}
    assert set(document["paths"][V2]) == {"get", "post"}
    for path in document["paths"].values():
        for operation in path.values():
            assert "422" not in operation["responses"]
    assert {"bearer", "token"} == set(document["components"]["securitySchemes"])


def test_docs_page_and_its_assets_are_served_locally(api: Api) -> None:
    page = api.client.get("/docs")
    assert page.status_code == 200
    external = re.findall(r"""(?:src|href)=["'](https?:)?//""", page.text)
    assert external == []
    assets = re.findall(r"""(?:src|href)=["'](/[^"']+)""", page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        response = api.client.get(asset)
        assert response.status_code == 200 and len(response.content) > 1000
    assert "'/openapi.json'" in page.text
