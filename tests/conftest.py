"""Fixtures shared by the whole suite: the real data, the shipped model, apps and real servers."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
MODEL_PATH = ROOT / "flaskService" / "model.h5"


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


@pytest.fixture(scope="session")
def mnist():
    """The MNIST npz (MNIST_NPZ, else ../shared/data/mnist.npz) as a dict of arrays."""
    path = os.environ.get("MNIST_NPZ", str(SHARED_DATA / "mnist.npz"))
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def predictor():
    """The shipped model, loaded once for the session (loading it per test would dominate the run)."""
    from flaskService.predictor import Predictor

    return Predictor.from_path(MODEL_PATH)


@pytest.fixture
def app(predictor):
    from flaskService import create_app

    return create_app({"TESTING": True, "PREDICTOR": predictor})


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
