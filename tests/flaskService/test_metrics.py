"""GET /metrics: Prometheus text, counted right across gunicorn workers (multiprocess mode)."""
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from prometheus_client import multiprocess
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from tests.helpers import samples


def digit_counts(text):
    return {dict(labels)["digit"]: value for labels, value in samples(text, "digit_predictions_total").items()}


@pytest.fixture
def metrics_server(start_server, tmp_path):
    """A 2-worker gunicorn whose metrics directory the test can see, holding a previous run's counts."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    stale = MmapedDict(str(directory / "counter_999999.db"))
    stale.write_value(mmap_key("digit_predictions", "digit_predictions_total", ["digit"], ["3"], ""), 1000.0, 0)
    stale.close()
    running = start_server(env={"PROMETHEUS_MULTIPROC_DIR": str(directory)}, workers=2)
    running.metrics_dir = directory
    # Ready means one worker is; each worker writes its model_info gauge once its model is loaded.
    deadline = time.monotonic() + 60
    while len(list(directory.glob("gauge_livemax_*.db"))) < 2:
        assert time.monotonic() < deadline, "the second worker did not load its model"
        time.sleep(0.2)
    return running


def test_digit_counters_sum_over_workers(metrics_server, mnist):
    """120 requests (60 /predict, 60 V2, 1-3 digits each) on fresh connections from 8 threads: the
    digit counters of one scrape add up to exactly the digits the responses gave (those with
    is_digit true), although both
    workers served them; the previous run's counts are gone."""
    url = metrics_server.url
    images = mnist["x_test"]

    def ask(i):
        count = 1 + i % 3
        batch = images[i * 3:i * 3 + count]
        if i % 2:
            body = {"inputs": [{"name": "images", "shape": [count, 784], "datatype": "UINT8",
                                "data": batch.ravel().tolist()}], "outputs": [{"name": "digit"}, {"name": "is_digit"}]}
            response = requests.post(url + "/v2/models/mnist/infer", json=body, timeout=30)
            outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
            return list(zip(outputs["digit"], outputs["is_digit"]))
        response = requests.post(url + "/predict", json={"pixels": batch.tolist()}, timeout=30)
        return [(p["digit"], p["is_digit"]) for p in response.json()["predictions"]]

    with ThreadPoolExecutor(8) as pool:
        answers = [answer for answered in pool.map(ask, range(120)) for answer in answered]
    answered = [digit for digit, one in answers if one]  # the digit counter counts only real digits
    for _ in range(5):
        assert requests.post(url + "/predict", data=b"{", headers={"Content-Type": "application/json"},
                             timeout=10).status_code == 400
    text = requests.get(url + "/metrics", timeout=10).text

    assert len(answers) == 240 and len(answered) >= 235
    assert digit_counts(text) == {str(d): float(n) for d, n in Counter(answered).items()}
    # Both workers did part of the work: each has its own counter file with digits in it.
    per_worker = []
    for path in metrics_server.metrics_dir.glob("counter_*.db"):
        merged = multiprocess.MultiProcessCollector.merge([str(path)])
        per_worker.append(sum(s.value for m in merged if m.name == "digit_predictions" for s in m.samples
                              if s.name == "digit_predictions_total"))
    assert sorted(n > 0 for n in per_worker) == [True, True], per_worker

    requests_total = samples(text, "http_requests_total")
    assert requests_total[(("endpoint", "/predict"), ("method", "POST"), ("status", "200"))] == 60
    assert requests_total[(("endpoint", "/v2/models/<model_name>/infer"), ("method", "POST"), ("status", "200"))] == 60
    assert requests_total[(("endpoint", "/predict"), ("method", "POST"), ("status", "400"))] == 5
    assert samples(text, "api_errors_total") == {(("code", "invalid_json"),): 5.0}
    stages = samples(text, "prediction_stage_duration_seconds_count")
    assert stages == {(("stage", "preprocess"),): 120.0, (("stage", "inference"),): 120.0}
    (model,) = samples(text, "model_info")
    assert dict(model)["name"] == "mnist" and dict(model)["backend"] in ("litert", "keras")


def test_metrics_in_one_process(client, mnist):
    """Without PROMETHEUS_MULTIPROC_DIR (tests, `flask run`) the process's own counters are served."""
    before = digit_counts(client.get("/metrics").text)
    assert client.post("/predict", json={"pixels": mnist["x_test"][0].tolist()}).json["digit"] == 7
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    after = digit_counts(response.text)
    assert after["7"] == before.get("7", 0) + 1
    assert sum(after.values()) == sum(before.values()) + 1
    assert "prediction_stage_duration_seconds_bucket" in response.text


def test_unmatched_paths_share_one_series(client):
    """Scanners requesting random URLs must not grow one series per URL."""
    for path in ("/wp-admin", "/.env", "/a/b/c"):
        client.get(path)
    series = samples(client.get("/metrics").text, "http_requests_total")
    endpoints = {dict(labels)["endpoint"] for labels in series}
    assert "unmatched" in endpoints and not endpoints & {"/wp-admin", "/.env", "/a/b/c"}
    assert all(not np.isnan(v) for v in series.values())
