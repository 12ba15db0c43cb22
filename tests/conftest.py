"""Fixtures shared by the whole suite: the real data, the shipped model, apps and real servers; and
the few helpers every part of it uses (image bytes, from the evaluation sets; the JSON error shape;
gunicorn failing to start)."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from modelTrain.evalsets.renders import image_bytes  # noqa: F401  (the tests import it from here)

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
MODEL_PATH = ROOT / "flaskService" / "model.h5"
NUMBER_MODEL_PATH = ROOT / "flaskService" / "number_model.h5"


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


# Debian's Chromium (Playwright's own browser download cannot run here), quiet and offline.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (Playwright's sync API allows one driver per process)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


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


@pytest.fixture
def open_page(browser, server):
    """Open a page of the session's server: `open_page(options, path="/")` -> a Tab, its browser
    context made with `options` (viewport, touch, ...); every tab is closed after the test."""
    tabs = []

    def open_(options, path="/"):
        tabs.append(Tab(browser, server.url, options, path))
        return tabs[-1]

    yield open_
    for tab in tabs:
        tab.context.close()


@pytest.fixture(scope="session", autouse=True)
def feedback_db(tmp_path_factory):
    """Corrections that the suite's apps and servers store go to a throwaway SQLite file, never to
    the checkout's data/ (the FEEDBACK_DB default); a test that needs another store sets its own."""
    os.environ["FEEDBACK_DB"] = f"sqlite:///{tmp_path_factory.mktemp('feedback') / 'feedback.db'}"
    return os.environ["FEEDBACK_DB"]


@pytest.fixture(scope="session")
def mnist_npz():
    """Path of the MNIST npz: MNIST_NPZ (as .ci/run sets it), else ../shared/data/mnist.npz."""
    path = Path(os.environ.get("MNIST_NPZ", SHARED_DATA / "mnist.npz"))
    assert path.is_file(), f"no MNIST npz at {path}: set MNIST_NPZ"
    return path.resolve()


@pytest.fixture(scope="session")
def mnist(mnist_npz):
    """The MNIST npz as a dict of arrays."""
    with np.load(mnist_npz) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def predictor():
    """The shipped model, loaded once for the session (loading it per test would dominate the run)."""
    from flaskService.predictor import Predictor

    return Predictor.from_path(MODEL_PATH)


@pytest.fixture(scope="session")
def number_predictor():
    """The shipped number model, loaded once for the session."""
    from flaskService.predictor import Predictor
    from flaskService.sequence import NUMBERS

    return Predictor.from_path(NUMBER_MODEL_PATH, contract=NUMBERS)


@pytest.fixture
def app(predictor, number_predictor):
    from flaskService import create_app

    return create_app({"TESTING": True, "PREDICTOR": predictor, "NUMBER_PREDICTOR": number_predictor})


@pytest.fixture
def client(app):
    return app.test_client()


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


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real gunicorn (2 workers, the shipped model) shared by the tests that only send requests."""
    running = Server(log_path=tmp_path_factory.mktemp("gunicorn") / "server.log")
    try:
        yield running.wait_ready()
    finally:
        running.stop()


@pytest.fixture
def start_server(tmp_path):
    """Start gunicorn with extra environment for one test; every server started is stopped after it."""
    started = []

    def start(env=None, workers=2, wait=True):
        running = Server(env=env, workers=workers, log_path=tmp_path / f"server{len(started)}.log")
        started.append(running)
        return running.wait_ready() if wait else running

    yield start
    for running in started:
        running.stop()
