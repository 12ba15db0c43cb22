"""The image, built by Podman from dockerFlaskService/Dockerfile as it is, and containers of it run
the way compose runs them."""
import time
import uuid

import pytest
import requests

from tests.conftest import ROOT, free_port
from tests.containers.engine import PYTHON_IMAGE, podman, stand_in

DOCKERFILE = ROOT / "dockerFlaskService" / "Dockerfile"
APP_IMAGE = "localhost/digits-service:latest"  # the compose file's `image: digits-service:latest`
# compose's hardening of the app service, as `podman run` options.
HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--tmpfs", "/tmp:size=64m"]


@pytest.fixture(scope="session")
def app_image():
    """Build the image (`--format docker` keeps its HEALTHCHECK); Podman's layer cache and the
    Dockerfile's pip cache mount make a build after the first one quick."""
    stand_in(PYTHON_IMAGE)
    podman("build", "--format", "docker", "-f", str(DOCKERFILE), "-t", APP_IMAGE, str(ROOT), timeout=3600)
    return APP_IMAGE


class Container:
    """One container of the image, run as compose runs the app, its port 5000 on a loopback port."""

    def __init__(self, image, *options, command=()):
        self.name = f"digits-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = time.monotonic()
        podman("run", "--detach", "--name", self.name, *HARDENED, "--env", "WEB_CONCURRENCY=1",
               "--publish", f"127.0.0.1:{self.port}:5000", *options, image, *command)

    def wait_ready(self, timeout=60):
        """Until /health/ready answers 200; the seconds it took from `podman run`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.state("{{.State.Running}}") == "true", self.logs()
            try:
                if requests.get(self.url + "/health/ready", timeout=1).status_code == 200:
                    return time.monotonic() - self.started
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready after {timeout} s: {self.logs()}")

    def state(self, template):
        return podman("inspect", "--format", template, self.name).stdout.strip()

    def logs(self):
        """(stdout, stderr) of the container, separately, as Podman recorded them."""
        result = podman("logs", self.name)
        return result.stdout, result.stderr

    def remove(self):
        podman("rm", "--force", "--time", "0", self.name, check=False)


@pytest.fixture
def run_container(app_image):
    """Run containers of the image for one test: `run_container(*podman_options)`; removed after."""
    started = []

    def run(*options, command=()):
        started.append(Container(app_image, *options, command=command))
        return started[-1]

    yield run
    for container in started:
        container.remove()
