"""GET /openapi.json describes every route the app has, validly; GET /docs works with no internet."""
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from flaskService.openapi import DOCUMENT

METHODS = {"get", "post", "put", "patch", "delete"}
OPERATIONS = [(path, method) for path, item in DOCUMENT["paths"].items() for method in item if method in METHODS]
# Not schemathesis's "valid data must be accepted": a schema cannot say "base64 of a digit image".
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def flask_routes(app):
    """{(OpenAPI-style path, method)} for every rule in app.url_map."""
    routes = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        routes |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_document_is_valid_openapi_3_1(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.json
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_document_lists_every_route(app, client):
    """Every route in app.url_map is documented, and nothing that is not a route."""
    document = client.get("/openapi.json").json
    documented = {(path, method) for path, item in document["paths"].items() for method in item if method in METHODS}
    assert documented == flask_routes(app)


def test_every_operation_documents_its_errors_in_one_shape(client):
    document = client.get("/openapi.json").json
    error = {"$ref": "#/components/schemas/Error"}
    for name, response in document["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == error, name
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path in ("/predict", "/read", "/v2/models/{model_name}/infer"):
                assert {"400", "413", "415"} <= set(operation["responses"]), (path, method)


@pytest.fixture(scope="module")
def api_schema(predictor):
    from flaskService import create_app

    return schemathesis.openapi.from_wsgi("/openapi.json", create_app({"TESTING": True, "PREDICTOR": predictor}))


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_answers_are_what_the_document_says(api_schema, path, method):
    """Requests generated from the document: never a 5xx, and every answer's status, media type and
    body are ones the document lists."""
    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=api_schema[path][method].as_strategy())
    def answer_matches(case):
        case.call_and_validate(checks=CHECKS)

    answer_matches()


def test_docs_page_loads_only_local_files(client):
    """The page and what it loads come from this server: it must work where there is no internet."""
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 3
    for asset in assets:
        assert asset.startswith("/"), asset
        response = client.get(asset)
        assert response.status_code == 200 and response.data, asset
    assert 'data-spec-url="/openapi.json"' in html


def test_docs_asset_outside_the_folder_is_404(client):
    assert client.get("/docs/assets/../openapi.py").status_code == 404
    assert client.get("/docs/assets/nothing.js").status_code == 404


def test_docs_page_renders_and_sends_requests(open_page):
    """In a real browser, offline: Swagger UI lists the operations and "Try it out" gets an answer."""
    tab = open_page({}, "/docs")
    page = tab.page
    page.wait_for_selector(".opblock")
    summaries = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v2/models/{model_name}/infer" in [s.replace("\u200b", "") for s in summaries]
    for operation_id in ("get_v2_health_ready", "post_v2_models__model_name__infer"):
        operation = page.locator(f"#operations-v2-{operation_id}")
        operation.locator(".opblock-summary").click()
        operation.get_by_role("button", name="Execute").click()  # with the document's examples
        status = operation.locator(".live-responses-table tbody .response-col_status")
        assert status.inner_text().strip() == "200", operation_id
    # Stricter than tab.foreign_requests(): not even a data: URL.
    assert [url for url in tab.requests if not url.startswith(tab.origin)] == []
