"""A small threaded load generator that keeps a ledger: one line per request, with what was sent, what
was expected, and what came back (or how the connection failed), for the load, crash and shutdown tests."""
import base64
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from tests import corpus

CONCURRENCY = 16


@dataclass
class Entry:
    """One request of the ledger."""
    kind: str
    method: str
    path: str
    kwargs: dict
    status: int  # expected
    digits: list = None  # expected, for the good ones
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = None
    ended: float = None
    got_status: int = None
    got_digits: list = None
    echoed_id: str = None
    got_code: str = None  # an error answer's JSON "code" (the app's or nginx's)
    error: str = None  # the connection failed: the exception's type and message
    refused: bool = False  # ... because nothing accepted the connection

    @property
    def answered(self):
        return self.got_status is not None

    @property
    def right(self):
        return self.got_status == self.status and self.got_digits == self.digits

    def in_flight_at(self, moment):
        return self.started <= moment and (self.ended is None or self.ended >= moment)


def _image(kind, data, content_type, status=200, digits=None):
    return Entry(kind, "POST", "/predict", {"data": data, "headers": {"Content-Type": content_type}}, status, digits)


def mix(clear_digits, count, seed=0):
    """`count` requests, about two thirds good (many encodings, one batch kind) and one third bad."""
    rng = random.Random(seed)
    pool = [(d, image) for d, images in clear_digits.items() for image in images]
    encoded = {}

    def some(builder):
        digit, image = rng.choice(pool)
        key = (builder.__name__, digit, id(image))
        if key not in encoded:
            encoded[key] = builder(image)
        return digit, *encoded[key]

    def png(_):
        digit, data, content_type = some(corpus.png_grey)
        return _image("png", data, content_type, digits=[digit])

    def jpeg(_):
        digit, data, content_type = some(corpus.jpeg_progressive)
        return _image("jpeg", data, content_type, digits=[digit])

    def webp(_):
        digit, data, content_type = some(corpus.webp_lossless)
        return _image("webp", data, content_type, digits=[digit])

    def multipart(_):
        digit, data, content_type = some(corpus.jpeg_sent_as_png)
        return Entry("multipart", "POST", "/predict", {"files": {"image": ("d.png", data, content_type)}}, 200, [digit])

    def data_url(_):
        digit, data, _type = some(corpus.png_grey)
        text = "data:image/png;base64," + base64.b64encode(data).decode()
        return Entry("json image", "POST", "/predict", {"json": {"image": text}}, 200, [digit])

    def pixels(_):
        digit, image = rng.choice(pool)
        return Entry("json pixels", "POST", "/predict", {"json": {"pixels": image.tolist()}}, 200, [digit])

    def batch(_):
        chosen = [some(corpus.png_grey) for _ in range(4)]
        images = [base64.b64encode(data).decode() for _d, data, _t in chosen]
        return Entry("json batch", "POST", "/predict", {"json": {"images": images}}, 200, [d for d, _x, _t in chosen])

    def random_bytes(i):
        return _image("random bytes", corpus.random_bytes(rng.randint(1, 3000), seed=i), "image/png", 400)

    def blank(_):
        return _image("blank", corpus.solid(rng.randint(1, 200), rng.randint(1, 200), 255), "image/png", 422)

    def broken_json(_):
        return Entry("broken json", "POST", "/predict",
                     {"data": '{"pixels": [1, 2', "headers": {"Content-Type": "application/json"}}, 400)

    def bad_base64(_):
        return Entry("bad base64", "POST", "/predict", {"json": {"image": "not*base64"}}, 400)

    def wrong_type(_):
        return _image("text/plain", b"seven", "text/plain", 415)

    def bomb(_):
        return _image("bomb", corpus.gif_screen_bomb(), "image/gif", 422)

    def get_predict(_):
        return Entry("GET /predict", "GET", "/predict", {}, 405)

    kinds = [png] * 5 + [jpeg] * 3 + [webp] * 2 + [multipart] * 2 + [data_url] * 2 + [pixels] * 3 + [batch] + \
            [random_bytes] * 2 + [blank] * 2 + [broken_json, bad_base64, wrong_type, bomb, get_predict]
    return [rng.choice(kinds)(i) for i in range(count)]


def send(url, entries, headers=None, concurrency=CONCURRENCY, timeout=30):
    """Send every entry (each thread on its own keep-alive session) and fill in what happened."""
    local = threading.local()

    def one(entry):
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        kwargs = dict(entry.kwargs)
        kwargs["headers"] = {**kwargs.get("headers", {}), **(headers or {}), "X-Request-ID": entry.request_id}
        entry.started = time.monotonic()
        try:
            response = session.request(entry.method, url + entry.path, timeout=timeout, **kwargs)
        except requests.RequestException as e:
            entry.ended = time.monotonic()
            entry.error = f"{type(e).__name__}: {e}"
            entry.refused = "Connection refused" in str(e)
            return
        entry.ended = time.monotonic()
        entry.got_status = response.status_code
        entry.echoed_id = response.headers.get("X-Request-ID")
        if response.status_code != 200 and response.headers.get("Content-Type", "").startswith("application/json"):
            entry.got_code = response.json().get("code")
        if response.status_code == 200:
            body = response.json()
            entry.got_digits = [p["digit"] for p in body["predictions"]] if "predictions" in body else [body["digit"]]

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, entries))
    return entries


def summary(entries):
    """A line of figures for reports and assertion messages."""
    answered = [e for e in entries if e.answered]
    counts = {}
    for e in answered:
        counts[e.got_status] = counts.get(e.got_status, 0) + 1
    span = max(e.ended for e in entries) - min(e.started for e in entries)
    return (f"{len(entries)} requests in {span:.1f} s ({len(entries) / span:.0f}/s): {len(answered)} answered "
            f"{dict(sorted(counts.items()))}, {sum(e.refused for e in entries)} refused, "
            f"{sum(e.error is not None and not e.refused for e in entries)} failed, "
            f"{sum(e.answered and not e.right for e in entries)} wrong")


def wait_for_rollout(server, old_workers, sha256, timeout=180):
    """After SIGHUP: wait until as many workers as before, none of them `old_workers`, all report the
    model `sha256` on /model; fail with the server's log if they do not, or if the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log_text()[-3000:]
        workers = server.workers()
        if len(workers) == len(old_workers) and not workers & old_workers and all(
                requests.get(server.url + "/model", timeout=5).json()["sha256"] == sha256 for _ in range(10)):
            return
        time.sleep(0.2)
    raise AssertionError(f"the workers were not replaced by ones serving {sha256[:12]}; "
                         f"log: {server.log_text()[-3000:]}")


def wait_for_more(ledger, count):
    """Wait until `count` more requests than now are in `ledger`."""
    target = len(ledger) + count
    while len(ledger) < target:
        time.sleep(0.05)
