"""The app's image under test and containers of it, run the way compose runs them; and the one
request every container test sends, the seed canvas."""
import time
import uuid

import requests

from tests.dockerFlaskService.containers.engine import podman
from tests.helpers import ROOT, SHARED_DATA, free_port

DOCKERFILE = ROOT / "dockerFlaskService" / "Dockerfile"
APP_IMAGE = "localhost/digits-service:latest"  # the compose file's `image: digits-service:latest`
# compose's hardening of the app service, as `podman run` options.
HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--tmpfs", "/tmp:size=64m"]

SEED_CANVAS = SHARED_DATA / "seed_canvas.jpeg"  # a 6, drawn on the original project's page


def post_seed_canvas(url):
    return requests.post(url + "/predict", data=SEED_CANVAS.read_bytes(), headers={"Content-Type": "image/jpeg"},
                         timeout=30)


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
