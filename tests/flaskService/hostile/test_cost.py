"""What one request may cost, against real gunicorn: a batch over MAX_REQUEST_PIXELS is refused
before any image is decoded, one image at the budget is answered, and neither takes a worker past a
replica's memory limit; a request past REQUEST_TIMEOUT is stopped and answered 503, and its worker
goes on serving. Times are printed (pytest -s), never asserted: the machine may be busy."""
import re
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import Server, assert_error
from tests import corpus
from tests.flaskService.hostile import batches

LIMIT = 384 * 2**20  # a replica's memory limit in compose and Kubernetes, bytes
SIDE = 4000  # 16 megapixels: MAX_PIXELS and MAX_REQUEST_PIXELS by default
BLANK = corpus.page_1bit(SIDE)  # 9 kB
SEVEN = corpus.page_1bit(SIDE, corpus.SEVEN)  # 12 kB: 256 of them are a 3 MB body, under MAX_CONTENT_LENGTH


def peak_rss(pid):
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1)) * 1024


def measured(server, route, images):
    """POST `images` to `route` as one batch -> (the response, the highest peak RSS of any worker
    while it was answered, in bytes)."""
    workers = server.workers()
    for pid in workers:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the kernel's peak RSS starts again from now
    data, headers = batches.body(route, images)
    started = time.monotonic()
    response = requests.post(server.url + route, data=data, headers=headers, timeout=60)
    seconds = time.monotonic() - started
    peak = max(peak_rss(pid) for pid in workers)
    print(f"\n{route}, {len(images)} image(s) of {len(images[0]):,} bytes: {response.status_code} "
          f"in {seconds:.2f} s, worker peak RSS {peak / 2**20:.0f} MiB")
    return response, peak


@pytest.mark.parametrize("image", (BLANK, SEVEN), ids=("blank", "seven"))
@pytest.mark.parametrize("route", batches.ROUTES)
def test_a_batch_over_the_budget_is_refused_before_any_decoding(service, route, image):
    """256 images of 16 megapixels each: 4.1 gigapixels declared in 1.5-3 MB (once 4 GB of RSS on /read)."""
    response, peak = measured(service, route, [image] * 256)
    assert_error(response, 413, "request_too_many_pixels")
    assert peak < LIMIT


@pytest.mark.parametrize(("image", "status"), ((BLANK, 422), (SEVEN, 200)), ids=("blank", "seven"))
@pytest.mark.parametrize("route", batches.ROUTES)
def test_one_image_at_the_budget_is_answered_within_the_memory_limit(service, route, image, status):
    response, peak = measured(service, route, [image])
    if status == 422:
        assert_error(response, 422, "blank_image")
    else:
        assert response.status_code == 200, response.text[:300]
    assert peak < LIMIT


@pytest.fixture(scope="module")
def unbudgeted_server(tmp_path_factory):
    """One worker with no pixel budget to speak of: what is left to bound memory is decoding one image at a time."""
    running = Server(env={"MAX_REQUEST_PIXELS": str(10**12)}, workers=1,
                     log_path=tmp_path_factory.mktemp("unbudgeted") / "server.log")
    try:
        yield running.wait_ready()
    finally:
        running.stop()


@pytest.mark.parametrize("route", ("/read", batches.V2_NUMBER))
def test_the_readers_hold_one_decoded_image_at_a_time(unbudgeted_server, route):
    """32 pages of 16 megapixels, 512 MB if decoded all at once (as /read and mnist-number once did)."""
    response, peak = measured(unbudgeted_server, route, [SEVEN] * 32)
    assert response.status_code == 200, response.text[:300]
    assert peak < LIMIT


@pytest.fixture(scope="module")
def hurried_server(tmp_path_factory):
    """One worker that may spend 20 ms on a request."""
    running = Server(env={"REQUEST_TIMEOUT": "0.02"}, workers=1,
                     log_path=tmp_path_factory.mktemp("deadline") / "server.log")
    try:
        yield running.wait_ready()
    finally:
        running.stop()


@pytest.mark.parametrize("route", batches.ROUTES)
def test_a_request_past_its_deadline_is_stopped_with_503(hurried_server, route):
    """16 one-megapixel pages take about 4 ms each to decode and read, some 65 ms in all: the deadline
    falls between them."""
    [worker] = hurried_server.workers(expected=1)
    response, _ = measured(hurried_server, route, [corpus.page_1bit(1000, corpus.SEVEN)] * 16)
    assert_error(response, 503, "deadline_exceeded")
    assert requests.get(hurried_server.url + "/health/ready", timeout=10).status_code == 200
    assert hurried_server.workers() == {worker}  # stopped by the app, not by killing its worker


@pytest.fixture(scope="module")
def feedback_server(tmp_path_factory):
    """Two workers storing corrections in SQLite under a 6 MB byte cap."""
    directory = tmp_path_factory.mktemp("flood")
    running = Server(env={"FEEDBACK_DB": f"sqlite:///{directory / 'feedback.db'}", "FEEDBACK_MAX_BYTES": "6000000"},
                     workers=2, log_path=directory / "server.log")
    try:
        yield running.wait_ready(), directory / "feedback.db"
    finally:
        running.stop()


def test_an_oversized_feedback_flood_stays_under_the_byte_cap_and_the_memory_limit(feedback_server):
    """24 corrections of 2 MB each from 8 clients at once: the store keeps what fits under
    FEEDBACK_MAX_BYTES and answers the rest 507, every request ends, and no worker nears the limit."""
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from tests.helpers import image_bytes

    server, database = feedback_server
    flood = [image_bytes(np.random.default_rng(seed).integers(0, 255, (1400, 1400), np.uint8))
             for seed in range(24)]
    workers = server.workers()
    for pid in workers:
        Path(f"/proc/{pid}/clear_refs").write_text("5")

    def send(png):
        started = time.monotonic()
        response = requests.post(server.url + "/feedback?label=3", data=png, headers={"Content-Type": "image/png"},
                                 timeout=60)
        return response.status_code, time.monotonic() - started

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, flood))
    peak = max(peak_rss(pid) for pid in workers)
    with sqlite3.connect(database) as connection:
        stored = connection.execute("SELECT COALESCE(SUM(LENGTH(image) + LENGTH(input)), 0), COUNT(*) "
                                    "FROM feedback").fetchone()
    seconds = sorted(took for _, took in answers)
    print(f"\nflood of {len(flood)} x {len(flood[0]) / 1e6:.1f} MB: {stored[0] / 1e6:.1f} MB in {stored[1]} rows; "
          f"statuses {sorted({status for status, _ in answers})}; median {seconds[len(seconds) // 2]:.2f} s, "
          f"max {seconds[-1]:.2f} s; worker peak RSS {peak / 2**20:.0f} MiB")
    assert {status for status, _ in answers} == {201, 507}
    assert stored[0] <= 6_000_000 and stored[1] == sum(status == 201 for status, _ in answers)
    assert peak < LIMIT
