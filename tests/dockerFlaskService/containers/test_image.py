"""The image, built and run by a real engine (Podman): small and without TensorFlow, read-only,
non-root, no capabilities, healthy, right, drained on `podman stop`, logging JSON to stdout."""
import hashlib
import http.client
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.dockerFlaskService.containers.engine import PYTHON_IMAGE, podman
from tests.dockerFlaskService.containers.image import DOCKERFILE, SEED_CANVAS, post_seed_canvas
from tests.helpers import COMPOSE, MODEL_PATH, NUMBER_MODEL_PATH, SHARED_DATA, child_pids, compose_config

# The first test builds the python stand-in and the image (pip downloads TensorFlow): minutes.
pytestmark = pytest.mark.timeout(1800)


def test_image_serves_without_tensorflow_and_adds_little_to_python_slim(app_image):
    """TensorFlow stayed in the build stage: importing it fails in the image, and the image adds
    less than 300 MB to its base; each model's conversion, named by its file's sha256, is beside it."""
    tried = podman("run", "--rm", app_image, "python", "-c", "import tensorflow", check=False)
    assert tried.returncode == 1 and "No module named 'tensorflow'" in tried.stderr, tried.stderr
    sizes = [int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout) for image in (app_image, PYTHON_IMAGE)]
    added = sizes[0] - sizes[1]
    print(f"\nthe image adds {added / 1e6:.0f} MB to its base")
    assert added <= 300e6
    expected = sorted(f"flaskService/{path.stem}.{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}.tflite"
                      for path in (MODEL_PATH, NUMBER_MODEL_PATH))
    listed = podman("run", "--rm", app_image, "python", "-c", "import glob; print(*glob.glob('flaskService/*.tflite'))")
    assert sorted(listed.stdout.split()) == expected


def test_runs_read_only_as_non_root_without_capabilities_and_is_right(run_container):
    """As compose runs it: ready soon after start, without converting anything; its HEALTHCHECK
    passes; PID 1 is gunicorn as UID 10001 with no capabilities; the root filesystem refuses
    writes; the seed canvas reads as 6; /model and V2 metadata report model.h5's sha256."""
    container = run_container()
    ready_after = container.wait_ready()
    assert podman("healthcheck", "run", container.name, check=False).returncode == 0
    assert container.state("{{.State.Health.Status}}") == "healthy"
    status = podman("exec", container.name, "cat", "/proc/1/status", "/proc/1/cmdline").stdout
    assert re.search(r"^Uid:\s+10001\s", status, re.MULTILINE), status
    assert re.search(r"^CapEff:\s+0+$", status, re.MULTILINE), status
    assert "gunicorn" in status
    write = podman("exec", container.name, "sh", "-c", "echo x > /app/written", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr

    response = post_seed_canvas(container.url)
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == 6
    sha256 = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()
    card = requests.get(container.url + "/model", timeout=5).json()
    assert (card["sha256"], card["version"]) == (sha256, sha256[:12])
    metadata = requests.get(container.url + "/v2/models/mnist", timeout=5).json()
    assert metadata["versions"] == [sha256[:12]] and metadata["platform"] == "tflite"
    assert "convert" not in " ".join(container.logs()).lower()

    pid = int(container.state("{{.State.Pid}}"))
    peak = sum(int(re.search(r"VmHWM:\s+(\d+) kB", open(f"/proc/{p}/status").read()).group(1)) * 1024
               for p in [pid, *child_pids(pid)])
    limit = int(compose_config(COMPOSE)["services"]["app"]["deploy"]["resources"]["limits"]["memory"])
    print(f"\nready {ready_after:.1f} s after `podman run`; peak RSS of gunicorn and its worker "
          f"{peak / 2**20:.0f} MiB (compose limit {limit / 2**20:.0f} MiB)")
    assert peak < 0.9 * limit


def test_log_lines_are_json_on_stdout(run_container):
    """stdout carries the service's access log, one JSON object per line; gunicorn's own lines go
    to stderr."""
    container = run_container()
    container.wait_ready()
    assert post_seed_canvas(container.url).status_code == 200
    requests.post(container.url + "/predict", data=b"not an image", headers={"Content-Type": "image/png"}, timeout=10)
    deadline = time.monotonic() + 10
    while True:
        stdout, stderr = container.logs()
        lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        if len([line for line in lines if line.get("path") == "/predict"]) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    predictions = [line for line in lines if line.get("path") == "/predict"]
    assert [(line["status"], line.get("digit")) for line in predictions] == [(200, 6), (400, None)], predictions
    assert all(line["request_id"] for line in lines)
    assert "Booting worker" in stderr


def test_podman_stop_drains_an_in_flight_request_and_exits_0(run_container):
    """SIGTERM from `podman stop` while a request's body is still arriving: gunicorn stops taking
    connections but finishes that request (the seed canvas, read as 6), then exits 0."""
    container = run_container()
    container.wait_ready()
    [worker] = child_pids(int(container.state("{{.State.Pid}}")))
    idle = sockets_of(worker)
    body = SEED_CANVAS.read_bytes()
    connection = http.client.HTTPConnection("127.0.0.1", container.port, timeout=30)
    connection.putrequest("POST", "/predict")
    connection.putheader("Content-Type", "image/jpeg")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body[:len(body) // 2])
    # In flight: the worker has accepted the connection (one more socket of its own), and waits
    # for the rest of the body. Not yet accepted, it would only be waiting in the kernel's backlog.
    deadline = time.monotonic() + 30
    while len(sockets_of(worker) - idle) < 1:
        assert time.monotonic() < deadline, "the worker never accepted the connection"
        time.sleep(0.05)
    stopped = []
    stopper = threading.Thread(target=lambda: stopped.append(podman("stop", "--time", "30", container.name,
                                                                    check=False)))
    stopper.start()
    deadline = time.monotonic() + 20
    while "Handling signal: term" not in container.logs()[1]:
        assert time.monotonic() < deadline, container.logs()
        time.sleep(0.1)
    connection.send(body[len(body) // 2:])
    response = connection.getresponse()
    answer = json.loads(response.read())
    stopper.join(timeout=60)
    assert (response.status, answer.get("digit")) == (200, 6), answer
    assert stopped and stopped[0].returncode == 0, stopped
    assert container.state("{{.State.ExitCode}}") == "0"


def sockets_of(pid):
    """The sockets a process holds open (their inodes)."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed while we looked
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def test_a_model_without_its_conversion_stops_the_start_with_the_command_to_convert_it(run_container):
    """MODEL_PATH at another .h5 and no conversion beside it: the image cannot convert (no
    TensorFlow), so gunicorn stops at once with one line naming the command, not a traceback."""
    container = run_container("--volume", f"{SHARED_DATA / 'seed_model.h5'}:/models/seed.h5:ro",
                              "--env", "MODEL_PATH=/models/seed.h5")
    podman("wait", container.name)
    assert container.state("{{.State.ExitCode}}") == "1"
    stdout, stderr = container.logs()
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in stderr and len(errors) == 1, stderr
    assert errors[0].endswith("python -m flaskService convert /models/seed.h5"), errors[0]
    assert "requirements-train.txt" in errors[0]


def test_dockerfile_is_the_one_built():
    """The tests above ran the repository's Dockerfile, which names the stand-in's base image."""
    assert re.search(r"^FROM python:\$\{PYTHON_VERSION\}-slim", DOCKERFILE.read_text(), re.MULTILINE)
    assert PYTHON_IMAGE.endswith(":3.11.14-slim")
    assert "ARG PYTHON_VERSION=3.11.14" in DOCKERFILE.read_text()
