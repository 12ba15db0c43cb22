"""The access log (one JSON line per request on stdout) and X-Request-ID on every response."""
import json
import re
import time
import uuid

import pytest
import requests

FIELDS = {"time", "request_id", "method", "path", "status", "duration_ms", "pid"}


def access_lines(text):
    return [json.loads(line) for line in text.split("\n") if line.startswith("{") and '"request_id"' in line]


def test_one_json_line_per_request(client, capsys, mnist):
    capsys.readouterr()
    client.post("/predict", json={"pixels": mnist["x_test"][0].tolist()})
    client.post("/predict", json={"pixels": mnist["x_test"][:3].tolist()})
    client.get("/health/ready")
    client.post("/predict", data=b"{", content_type="application/json")
    client.get("/no/such/page")
    single, batch, health, bad, missing = access_lines(capsys.readouterr().out)

    for line in (single, batch, health, bad, missing):
        assert FIELDS <= set(line)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert (single["method"], single["path"], single["status"], single["digit"]) == ("POST", "/predict", 200, 7)
    assert batch["batch_size"] == 3 and "digit" not in batch
    assert (health["path"], health["status"]) == ("/health/ready", 200) and "digit" not in health
    assert bad["status"] == 400 and missing["status"] == 404
    assert len({line["request_id"] for line in (single, batch, health, bad, missing)}) == 5


def test_v2_requests_log_their_batch(client, capsys, mnist):
    capsys.readouterr()
    body = {"inputs": [{"name": "images", "shape": [2, 784], "datatype": "UINT8",
                        "data": mnist["x_test"][:2].ravel().tolist()}]}
    client.post("/v2/models/mnist/infer", json=body)
    (line,) = access_lines(capsys.readouterr().out)
    assert (line["path"], line["status"], line["batch_size"]) == ("/v2/models/mnist/infer", 200, 2)


@pytest.mark.parametrize(("sent", "kept"), (
    ("3f2a9c1e-77b0-4a8e-9d36-2a1f0b5c8e11", True),
    ("lb.edge-01:abc_123", True),
    ("", False),
    ("has spaces", False),
    ('quote"d', False),
    ("x" * 129, False),
))
def test_request_id_is_the_callers_if_sane(client, capsys, sent, kept):
    capsys.readouterr()
    response = client.get("/health/live", headers={"X-Request-ID": sent})
    returned = response.headers["X-Request-ID"]
    if kept:
        assert returned == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", returned)
    (line,) = access_lines(capsys.readouterr().out)
    assert line["request_id"] == returned


def test_errors_carry_a_request_id(client):
    """Even a response made by an error handler (404, 405, 400) names its request."""
    for response in (client.get("/nothing"), client.get("/predict"), client.post("/v2/models/mnist/infer", data=b"{")):
        assert response.status_code >= 400 and re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_gunicorn_workers_write_the_lines_to_stdout(server):
    """Under gunicorn each request gives exactly one line in the workers' stdout (the server's log)."""
    ids = [uuid.uuid4().hex for _ in range(6)]
    for request_id in ids:
        requests.get(server.url + "/v2/health/live", headers={"X-Request-ID": request_id}, timeout=10)
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in access_lines(server.log_text()) if line["request_id"] in ids]
        if len(lines) >= len(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sorted(line["request_id"] for line in lines) == sorted(ids)
    assert all(line["path"] == "/v2/health/live" and line["status"] == 200 for line in lines)
