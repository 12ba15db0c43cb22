"""Helpers the tests import (fixtures live in the conftest.py files): the repository's paths, the JSON
error shape, real gunicorns, the compose file, nginx in front of servers, and drawing in a browser."""
import base64
import grp
import io
import json
import math
import os
import pwd
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from modelTrain.evalsets.renders import image_bytes  # noqa: F401  (the tests import it from here)
from tests.dockerFlaskService.containers.engine import NGINX_IMAGE, PODMAN, environment

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
MODEL_PATH = ROOT / "flaskService" / "model.h5"
NUMBER_MODEL_PATH = ROOT / "flaskService" / "number_model.h5"
# What training writes beside the service: evaluation cards, and the plots the docs show.
NUMBER_CARD_PATH = ROOT / "modelTrain" / "cards" / "number.json"
DOC_IMAGES = ROOT / "docs" / "images"


def assert_error(response, status, code=None):
    """The response (from requests or Flask's test client) is the service's one JSON error shape,
    {"error": message, "code": machine code, "status": status}, with this status (and code, if given)."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers["Content-Type"]
    body = response.json() if callable(response.json) else response.json
    assert set(body) == {"error", "code", "status"}, body
    assert body["status"] == status and isinstance(body["error"], str) and body["error"], body
    if code is not None:
        assert body["code"] == code, body


def child_pids(pid):
    """The pids of a process's live children, from every process's parent in /proc (the kernel's
    own children list can omit live children while another child is exiting)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):  # it exited while we looked
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real gunicorn running the app with flaskService/gunicorn.conf.py on a free loopback port."""

    def __init__(self, env=None, workers=2, log_path=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port),
                       "WEB_CONCURRENCY": str(workers), **(env or {})}
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "flaskService/gunicorn.conf.py"],
            cwd=ROOT, env=environment, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=120):
        """Until /health/ready says 200 (a busy two-core machine can take a minute to start several
        servers at once); a probe refused or timed out (bound socket, no worker yet) is tried again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; log: {self.log_text()}")
            try:
                if requests.get(self.url + "/health/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:  # refused while binding, or accepted but no worker yet
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn not ready after {timeout}s; log: {self.log_text()}")

    def workers(self, expected=None, timeout=10):
        """The master's worker pids; with `expected`, waits (up to `timeout` s) until there are that many."""
        deadline = time.monotonic() + timeout
        found = child_pids(self.process.pid)
        while expected is not None and len(found) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
            found = child_pids(self.process.pid)
        return found

    def log_text(self):
        return Path(self.log_path).read_text(errors="replace") if self.log_path else "(not kept)"

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()


def gunicorn_start_error(env):
    """Start gunicorn with only `env` (and PATH, a free loopback port) and expect it to stop before
    any worker starts: exit 1, no traceback, exactly one `error:` line on stderr, which is returned."""
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "flaskService/gunicorn.conf.py"], cwd=ROOT, timeout=60,
        capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "PORT": str(free_port()), "HOST": "127.0.0.1", **env})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Booting worker" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def seed_requests(data):
    """The seed canvas in every form /predict accepts, as test-client keyword arguments."""
    b64 = base64.b64encode(data).decode()
    url = "data:image/jpeg;base64," + b64
    return {
        "multipart image": dict(data={"image": (io.BytesIO(data), "six.jpg")}),
        "multipart file": dict(data={"file": (io.BytesIO(data), "six.jpg")}),
        "multipart text data URL (the original page)": dict(data={"file": url}, content_type="multipart/form-data"),
        "urlencoded data URL": dict(data={"file": url}),
        "raw body": dict(data=data, content_type="image/jpeg"),
        "raw body, lying content type": dict(data=data, content_type="image/png"),
        "json base64": dict(json={"image": b64}),
        "json data URL": dict(json={"image": url}),
    }


def samples(text, name):
    """{labels as a sorted tuple: value} for every sample called `name` in a scrape."""
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name == name}


# The compose file, and Compose's own reading of it.
COMPOSE = ROOT / "dockerFlaskService" / "docker-compose.yml"
DOCKER_COMPOSE = Path(sys.executable).parent / "docker-compose"
POSTGRES_PASSWORD = "compose-test-password"  # required: the stack has no default database password
DASHBOARD = ROOT / "dockerFlaskService" / "grafana" / "dashboards" / "digits.json"


def compose_config(path, *options, environment=None):
    """`docker compose config` as JSON: the file as Compose reads it, defaults filled in."""
    result = subprocess.run([str(DOCKER_COMPOSE), "-f", str(path), *options, "config", "--format", "json"],
                            capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "POSTGRES_PASSWORD": POSTGRES_PASSWORD, **(environment or {})})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def queries(dashboard):
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


TEMPLATE = ROOT / "dockerFlaskService" / "nginx" / "templates" / "default.conf.template"
UNLIMITED = "10000r/s"  # for the tests about balancing, where the rate limit is not the subject


def render(addresses, **env):
    """The template as the nginx image renders it: ${NAME} replaced for the names given (the image's
    envsubst touches only variables its environment defines), and the `server ${APP_SERVER}` line
    written once per address, as nginx does for a name that resolves to several replicas."""
    lines = []
    for line in TEMPLATE.read_text().splitlines(keepends=True):
        if "${APP_SERVER}" in line and not line.lstrip().startswith("#"):
            lines += [line.replace("${APP_SERVER}", address) for address in addresses]
        else:
            lines.append(line)
    return re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), m.group(0)), "".join(lines))


class Nginx:
    """Debian's nginx in the foreground on a free loopback port; pid, logs and temp files in `directory`.

    The main file stands in for the nginx image's /etc/nginx/nginx.conf, which includes conf.d/
    inside `http {}`; it adds only the paths a run outside the package's directories needs. The
    rendered template is included unchanged."""

    def __init__(self, directory, addresses, rate_limit=UNLIMITED):
        # Imported here: conftest.py imports this module, and the app's package brings Flask with it.
        from flaskService.config import SETTINGS

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.directory / "default.conf").write_text(render(
            addresses, NGINX_PORT=f"127.0.0.1:{self.port}", RATE_LIMIT=rate_limit, NGINX_RESOLVER="127.0.0.1",
            MAX_CONTENT_LENGTH=str(SETTINGS["MAX_CONTENT_LENGTH"][0])))
        temp = "\n".join(f"    {kind}_temp_path {self.directory / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = f"{pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name}"
        self.conf = self.directory / "nginx.conf"
        self.conf.write_text(
            f"daemon off;\nuser {user};\nworker_processes 1;\npid {self.directory / 'nginx.pid'};\n"
            f"error_log {self.directory / 'error.log'} warn;\n"
            f"events {{ worker_connections 512; }}\n"
            f"http {{\n{temp}\n    include {self.directory / 'default.conf'};\n}}\n")
        self.access_log = self.directory / "access.log"
        self.process = None

    def command(self, *extra):
        """nginx of the image, on the host's network, seeing only this directory of the host."""
        return [PODMAN, "run", "--rm", "--network", "host", "--volume", f"{self.directory}:{self.directory}",
                NGINX_IMAGE, "nginx", "-p", str(self.directory), "-c", str(self.conf), "-e", "stderr", *extra]

    def start(self):
        with open(self.access_log, "wb") as log:  # the template logs to /dev/stdout, as in a container
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            env=environment())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.access_log.read_text()
            try:
                requests.get(self.url + "/health/live", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not listen within 10 s")

    def log(self, count):
        """The first `count` JSON access lines; nginx writes a line just after the response has
        left, so the client can be a moment ahead of it."""
        deadline = time.monotonic() + 5
        while True:
            lines = [json.loads(line) for line in self.access_log.read_text().split("\n") if line.startswith("{")]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


# Debian's Chromium (Playwright's own browser download cannot run here), quiet and offline.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


class Tab:
    """One page of the app in its own browser context, with everything it requested and logged."""

    def __init__(self, browser, origin, options, path="/"):
        self.origin = origin
        self.context = browser.new_context(**options)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.requests = []
        self.console_errors = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        self.page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        self.response = self.page.goto(origin + path)

    def foreign_requests(self):
        """Requests that left the server's origin (data: URLs are the page's own bytes)."""
        return [url for url in self.requests if not (url.startswith(self.origin + "/") or url.startswith("data:"))]


def arc(cx, cy, rx, ry, start, end, n=14):
    """Points on an ellipse from angle `start` to `end` (degrees; 0 = right, 90 = down on screen)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in (start + (end - start) * i / (n - 1) for i in range(n))]


def smooth(points, per_segment=4):
    """A Catmull-Rom curve through `points`: a hand moves in curves, not corners."""
    padded = [points[0], *points, points[-1]]
    out = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1:i + 3]
        for step in range(per_segment):
            t = step / per_segment
            out.append(tuple(0.5 * (2 * b + (-a + c) * t + (2 * a - 5 * b + 4 * c - d) * t * t
                                    + (-a + 3 * b - 3 * c + d) * t ** 3) for a, b, c, d in zip(p0, p1, p2, p3)))
    return out + [points[-1]]


# Each digit as a person writes it: strokes in writing order and direction, in a box one unit high
# (x right, y down). A 0 starts at the top and goes anticlockwise, a 4 is two strokes, a 5's bar comes last.
DIGITS = {
    0: [arc(0.5, 0.5, 0.4, 0.5, 265, -95, 22)],
    1: [[(0.58, 0.0), (0.54, 0.35), (0.48, 0.7), (0.44, 1.0)]],
    2: [arc(0.48, 0.28, 0.4, 0.28, 195, 380, 12) + smooth([(0.85, 0.4), (0.5, 0.72), (0.08, 1.0)], 3)
        + [(0.5, 0.99), (0.95, 0.98)]],
    3: [arc(0.45, 0.26, 0.4, 0.25, 205, 450, 14)[:-1] + arc(0.45, 0.75, 0.46, 0.25, -90, 155, 14)],
    4: [[(0.28, 0.0), (0.18, 0.3), (0.06, 0.62), (0.5, 0.62), (0.95, 0.6)], [(0.72, 0.08), (0.7, 0.55), (0.68, 1.0)]],
    5: [[(0.22, 0.02), (0.18, 0.25), (0.15, 0.47)] + arc(0.47, 0.7, 0.42, 0.3, -130, 150, 14),
        [(0.22, 0.0), (0.55, 0.0), (0.9, -0.02)]],
    6: [smooth([(0.78, 0.0), (0.45, 0.15), (0.25, 0.4), (0.18, 0.7), (0.3, 0.95), (0.55, 1.0), (0.78, 0.85),
                (0.78, 0.62), (0.55, 0.5), (0.32, 0.56), (0.2, 0.7)])],
    7: [[(0.05, 0.02), (0.5, 0.0), (0.95, 0.0)] + smooth([(0.95, 0.0), (0.7, 0.4), (0.52, 0.72), (0.42, 1.0)], 3)],
    8: [smooth([(0.8, 0.1), (0.55, 0.0), (0.25, 0.06), (0.2, 0.26), (0.5, 0.47), (0.82, 0.66), (0.8, 0.9),
                (0.5, 1.0), (0.18, 0.9), (0.2, 0.67), (0.5, 0.47), (0.76, 0.28), (0.8, 0.1)])],
    9: [arc(0.45, 0.27, 0.35, 0.27, 10, -350, 20) + smooth([(0.8, 0.3), (0.78, 0.65), (0.74, 1.0)], 3)],
}
WIDTH = 0.7  # handwritten digits are about 0.7 as wide as they are tall
SLANT = 0.12  # and lean forward a little

# Where on the pad each digit is written and how tall, as shares of the pad's side: people do not
# write in the middle, nor at one size.
PLACES = [(0.30, 0.15, 0.70), (0.45, 0.10, 0.60), (0.15, 0.25, 0.55), (0.50, 0.55, 0.35), (0.20, 0.10, 0.75),
          (0.25, 0.20, 0.65), (0.50, 0.45, 0.45), (0.20, 0.15, 0.70), (0.35, 0.05, 0.80), (0.10, 0.40, 0.50)]

RESULT_SETTLED = """() => {
    const result = document.getElementById('result');
    return result.getAttribute('aria-busy') !== 'true' && !result.classList.contains('stale')
        && (document.getElementById('digit').textContent !== '' || result.classList.contains('failed')
            || result.classList.contains('not-digit'));
}"""


def pad_points(page, digit, place):
    """The digit's strokes in page coordinates, written at `place` = (left, top, height) on the pad."""
    box = page.locator("#pad").bounding_box()
    left, top, height = (share * box["width"] for share in place)
    return [[(box["x"] + left + height * (WIDTH * x + SLANT * (0.5 - y)), box["y"] + top + height * y)
             for x, y in stroke] for stroke in DIGITS[digit]]


def draw_with_mouse(page, strokes):
    for stroke in strokes:
        page.mouse.move(*stroke[0])
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*point, steps=3)
        page.mouse.up()


def settled(page):
    """Wait for the page to finish reading; return (digit shown, status line)."""
    page.wait_for_function(RESULT_SETTLED)
    return page.text_content("#digit"), page.text_content("#status")
