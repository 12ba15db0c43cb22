"""The app under real gunicorn (flaskService/gunicorn.conf.py) on a free loopback port."""
import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import requests
from PIL import Image

from tests.conftest import ROOT, free_port


def png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def test_serves_predictions(server, mnist):
    response = requests.post(server.url + "/predict", files={"image": ("d.png", png(mnist["x_test"][0]))}, timeout=10)
    assert response.status_code == 200 and response.json()["digit"] == mnist["y_test"][0]
    assert response.headers["Content-Type"] == "application/json"


def test_ready_and_live(server):
    assert requests.get(server.url + "/health/ready", timeout=5).json() == {"status": "ready"}
    assert requests.get(server.url + "/health/live", timeout=5).status_code == 200


def test_oversized_body_is_413_json(server):
    response = requests.post(server.url + "/predict", data=b"\x00" * (5 * 1024 * 1024),
                             headers={"Content-Type": "image/png"}, timeout=10)
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_concurrent_requests_are_all_answered_right(server, mnist):
    """64 requests from 8 threads over 2 workers: every one answered, each with its own digit."""
    def ask(i):
        r = requests.post(server.url + "/predict", data=png(mnist["x_test"][i]),
                          headers={"Content-Type": "image/png"}, timeout=10)
        return r.status_code, r.json()["digit"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ask, range(64)))
    assert all(status == 200 for status, _ in results)
    assert sum(d == y for (_, d), y in zip(results, mnist["y_test"][:64])) >= 62


def test_missing_model_stops_gunicorn_with_one_line(tmp_path):
    """A wrong MODEL_PATH stops the server before any worker starts, with one clear line."""
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "flaskService/gunicorn.conf.py"], cwd=ROOT, timeout=60,
        capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "MODEL_PATH": str(tmp_path / "none.h5"), "PORT": str(free_port()),
             "HOST": "127.0.0.1"})
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: model file not found: {tmp_path / 'none.h5'} (set MODEL_PATH)"]
    assert "Traceback" not in result.stderr


def test_bad_setting_stops_gunicorn_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "flaskService/gunicorn.conf.py"], cwd=ROOT, timeout=60,
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "MAX_IMAGES": "lots", "PORT": str(free_port())})
    assert result.returncode != 0 and "error: MAX_IMAGES must be a positive integer" in result.stderr
    assert "Traceback" not in result.stderr
