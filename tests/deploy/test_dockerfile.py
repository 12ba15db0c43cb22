"""The image (dockerFlaskService/Dockerfile): lint-clean, and its exact CMD and HEALTHCHECK serve
the app from a virtualenv built only from requirements.txt, as the image's is; no Docker needed."""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import ROOT, child_pids, free_port, image_bytes

DOCKERFILE = ROOT / "dockerFlaskService" / "Dockerfile"
COMPOSE = ROOT / "dockerFlaskService" / "docker-compose.yml"
DEPLOYMENT = ROOT / "dockerFlaskService" / "k8s" / "deployment.yaml"
VENV_IN_IMAGE = "/opt/venv"
# The fresh virtualenv's interpreter must be one the image's user may run, as the image's
# /usr/local/bin/python is: the system's, not one installed under a private home (pyenv).
BASE_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def instructions(path=DOCKERFILE):
    """The final stage's (instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    pairs = [tuple(line.strip().split(None, 1)) for line in text.splitlines() if line.strip()]
    last_from = max(i for i, (name, _) in enumerate(pairs) if name == "FROM")
    return [(name.upper(), args) for name, args in pairs[last_from:]]


def exec_form(args):
    """A JSON-array (exec form) command; the shell form is not accepted."""
    command = json.loads(args)
    assert isinstance(command, list) and all(isinstance(word, str) for word in command), args
    return command


def image_environment(venv):
    """The environment the image's ENV lines give, with the image's virtualenv replaced by `venv`."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the python image's
    for name, args in instructions():
        if name == "ENV":
            for pair in shlex.split(args):
                key, value = pair.split("=", 1)
                value = value.replace("$PATH", environment["PATH"]).replace(VENV_IN_IMAGE, str(venv))
                environment[key] = value
    return environment


def memory_bytes(text):
    units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "ki": 2**10, "mi": 2**20, "gi": 2**30}
    number, unit = re.fullmatch(r"(\d+)([a-zA-Z]*)", str(text)).groups()
    return int(number) * units[unit.lower().rstrip("b")]


def tree_rss(pid):
    """Resident memory of a process and all its descendants, in bytes (shared pages counted in
    each process, so an upper bound); 0 for a process that is gone or a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = child_pids(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0
    rss = re.search(r"VmRSS:\s+(\d+) kB", status)
    return (int(rss.group(1)) * 1024 if rss else 0) + sum(map(tree_rss, children))


def as_in_the_image(uid, *read_only_paths):
    """A command prefix that runs a command as the image runs it: as `uid`, with `read_only_paths`
    (code and virtualenv) read-only and, if none of them is in /tmp, a /tmp of its own in memory
    (compose's tmpfs), in a private mount namespace no other process sees. Needs root to set up;
    elsewhere the prefix is empty and the command runs as the current user."""
    mounts = [f"mount --bind {p} {p} && mount -o remount,bind,ro {p}"
              for p in (shlex.quote(str(path)) for path in read_only_paths)]
    if not any(Path(path).is_relative_to("/tmp") for path in read_only_paths):
        mounts.append("mount -t tmpfs -o size=64m,mode=1777 tmpfs /tmp")
    script = " && ".join([*mounts, f'exec setpriv --reuid={uid} --regid={uid} --clear-groups "$@"'])
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    if os.geteuid() != 0 or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        return []
    return prefix


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_a_fixed_non_root_uid_from_the_repository_root():
    """The settings compose and the Deployment depend on: UID 10001, port 5000, WORKDIR /app with
    flaskService/ in it (the CMD names flaskService/gunicorn.conf.py relative to it)."""
    final = dict(instructions())
    assert final["USER"].split(":")[0] in ("10001", "${UID}")
    assert re.search(r"ARG UID=10001", DOCKERFILE.read_text())
    assert final["EXPOSE"] == "5000"
    assert final["WORKDIR"] == "/app"
    assert final["COPY"].split() == ["flaskService/", "flaskService/"]
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


def test_dockerignore_lets_in_only_what_the_image_copies():
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line and not line.startswith("#")]
    assert patterns[0] == "*"
    assert {p for p in patterns if p.startswith("!")} == {"!requirements.txt", "!flaskService/"}


@pytest.fixture(scope="module")
def fresh_venv():
    """A virtualenv with requirements.txt and nothing else (pip's cache makes it quick), where the
    image's user can read it (pytest's own temporary directories are private to the user running it).
    In memory when there is room: its 1.6 GB are written and deleted in seconds instead of a minute
    of a busy disk."""
    in_memory = os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 4 * 2**30
    directory = Path(tempfile.mkdtemp(prefix="digits-image-", dir="/dev/shm" if in_memory else None))
    directory.chmod(0o755)
    venv = directory / "venv"
    try:
        subprocess.run([BASE_PYTHON, "-m", "venv", str(venv)], check=True)
        pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", "-r", str(ROOT / "requirements.txt")],
                             capture_output=True, text=True)
        assert pip.returncode == 0, pip.stderr
        yield venv
    finally:
        shutil.rmtree(directory)


def test_cmd_and_healthcheck_serve_predictions(fresh_venv, mnist, tmp_path):
    """The image's CMD, started as Docker would (its ENV, cwd = WORKDIR, a fresh venv in place of
    /opt/venv, its UID, code and venv read-only), serves /predict; HEALTHCHECK fails before the
    model is ready and passes after; memory stays inside the compose and Kubernetes limits;
    SIGTERM ends it cleanly within compose's stop_grace_period."""
    final = instructions()
    cmd = exec_form(dict(final)["CMD"])
    healthcheck_args = dict(final)["HEALTHCHECK"]
    options, check = healthcheck_args.split(" CMD ", 1)
    healthcheck = exec_form(check)
    check_timeout = int(re.search(r"--timeout=(\d+)s", options).group(1))

    compose = yaml.safe_load(COMPOSE.read_text())["services"]["app"]
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    uid = re.search(r"^ARG UID=(\d+)$", DOCKERFILE.read_text(), re.MULTILINE).group(1)
    # The image's /app: only what its COPY takes, where the image's user can read it (the checkout
    # itself may sit in a directory private to whoever cloned it).
    app_dir = fresh_venv.parent / "app"
    if not app_dir.exists():
        shutil.copytree(ROOT / "flaskService", app_dir / "flaskService", ignore=shutil.ignore_patterns("__pycache__"))
    prefix = as_in_the_image(uid, app_dir, fresh_venv)
    port = free_port()
    # As `docker run -e`: loopback only here, one worker per container as compose and k8s set it.
    environment = {**image_environment(fresh_venv), "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1"}
    if prefix:
        environment["HOME"] = "/nonexistent"  # the image's user has none

    def check_health():
        return subprocess.run(healthcheck, cwd=app_dir, env=environment, capture_output=True,
                              timeout=check_timeout).returncode

    assert check_health() != 0  # nothing listens yet: unhealthy
    log = open(tmp_path / "gunicorn.log", "wb")
    server = subprocess.Popen([*prefix, *cmd], cwd=app_dir, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        started, peak = time.monotonic(), 0
        while check_health() != 0:
            assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
            assert time.monotonic() - started < 90, "not healthy within 90 s"
            for _ in range(5):
                peak = max(peak, tree_rss(server.pid))
                time.sleep(0.1)
        healthy_after = time.monotonic() - started

        url = f"http://127.0.0.1:{port}"
        right = 0
        for array, label in zip(mnist["x_test"][:20], mnist["y_test"][:20]):
            response = requests.post(url + "/predict", files={"image": ("digit.png", image_bytes(array), "image/png")},
                                     timeout=30)
            assert response.status_code == 200, response.text
            right += response.json()["digit"] == int(label)
        assert right >= 19

        serving = tree_rss(server.pid)
        peak = max(peak, serving)
        compose_limit = memory_bytes(compose["deploy"]["resources"]["limits"]["memory"])
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        k8s_limit = memory_bytes(container["resources"]["limits"]["memory"])
        print(f"\n{f'as UID {uid}, code and venv read-only' if prefix else 'as the current user'}; "
              f"healthy after {healthy_after:.1f} s; {right}/20 digits right; "
              f"RSS of gunicorn and its children: {peak / 2**20:.0f} MiB at most while starting, "
              f"{serving / 2**20:.0f} MiB serving (limits: compose {compose_limit / 2**20:.0f} MiB, "
              f"k8s {k8s_limit / 2**20:.0f} MiB)")
        assert peak < 0.9 * min(compose_limit, k8s_limit)
    finally:
        server.send_signal(signal.SIGTERM)  # what `docker stop` sends to PID 1
        stopping = time.monotonic()
        code = server.wait(timeout=60)
        log.close()
    assert code == 0
    assert time.monotonic() - stopping < int(compose["stop_grace_period"].rstrip("s"))
