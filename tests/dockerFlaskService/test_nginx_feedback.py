"""nginx (the compose stack's config, Debian's nginx) limits POST /feedback like /predict: a flood
gets 429 before it reaches the app or the database."""
import base64
import time

import requests

from tests.helpers import Nginx, assert_error, image_bytes


def test_feedback_is_rate_limited(start_server, tmp_path, mnist):
    server = start_server(workers=1)
    proxy = Nginx(tmp_path / "nginx", [f"127.0.0.1:{server.port}"], rate_limit="1r/s").start()
    try:
        body = {"image": base64.b64encode(image_bytes(mnist["x_test"][0])).decode(), "label": int(mnist["y_test"][0])}
        started = time.monotonic()
        with requests.Session() as session:
            responses = [session.post(proxy.url + "/feedback", json=body, timeout=30) for _ in range(30)]
        elapsed = time.monotonic() - started
    finally:
        proxy.stop()
    stored = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 429]
    assert len(stored) + len(refused) == 30
    assert 21 <= len(stored) <= 21 + int(elapsed) + 1  # the burst of 20, plus one a second
    for response in refused:
        assert_error(response, 429, "too_many_requests")
