"""The app under real gunicorn (flaskService/gunicorn.conf.py) on a free loopback port."""
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.helpers import assert_error, gunicorn_start_error, image_bytes


def test_serves_predictions(server, mnist):
    response = requests.post(server.url + "/predict", files={"image": ("d.png", image_bytes(mnist["x_test"][0]))},
                             timeout=10)
    assert response.status_code == 200 and response.json()["digit"] == mnist["y_test"][0]
    assert response.headers["Content-Type"] == "application/json"


def test_ready_and_live(server):
    assert requests.get(server.url + "/health/ready", timeout=5).json() == {"status": "ready"}
    assert requests.get(server.url + "/health/live", timeout=5).status_code == 200


def test_oversized_body_is_413_json(server):
    response = requests.post(server.url + "/predict", data=b"\x00" * (5 * 1024 * 1024),
                             headers={"Content-Type": "image/png"}, timeout=10)
    assert_error(response, 413, "payload_too_large")


def test_concurrent_requests_are_all_answered_right(server, mnist):
    """64 requests from 8 threads over 2 workers: every one answered, each with its own digit."""
    def ask(i):
        r = requests.post(server.url + "/predict", data=image_bytes(mnist["x_test"][i]),
                          headers={"Content-Type": "image/png"}, timeout=10)
        return r.status_code, r.json()["digit"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ask, range(64)))
    assert all(status == 200 for status, _ in results)
    assert sum(d == y for (_, d), y in zip(results, mnist["y_test"][:64])) >= 62


def test_missing_model_stops_gunicorn_with_one_line(tmp_path):
    """A wrong MODEL_PATH stops the server before any worker starts, with one clear line."""
    error = gunicorn_start_error({"MODEL_PATH": str(tmp_path / "none.h5")})
    assert error == f"error: model file not found: {tmp_path / 'none.h5'} (set MODEL_PATH)"


def test_bad_setting_stops_gunicorn_with_one_line():
    assert gunicorn_start_error({"MAX_IMAGES": "lots"}).startswith("error: MAX_IMAGES must be a positive integer")
