"""The load balancer's config (dockerFlaskService/nginx), run by the nginx of the compose file's image
(its stand-in: `resolve` in upstream servers needs nginx >= 1.27.3, newer than Debian 12's) in
Podman on the host's network, on loopback in front of real gunicorns: the same template the image
renders, with the test's addresses put in."""
import os
import signal
import socket
import socketserver
import struct
import subprocess
import threading
import time

import numpy as np
import pytest
import requests

from flaskService.config import SETTINGS
from flaskService.digits.preprocess import preprocess_image
from tests.dockerFlaskService.containers.engine import NGINX_IMAGE, PODMAN, environment, stand_in
from tests.helpers import ROOT, TEMPLATE, UNLIMITED, Nginx, Server, assert_error, free_port, image_bytes, render

MAX_CONTENT_LENGTH = SETTINGS["MAX_CONTENT_LENGTH"][0]


class Backend(socketserver.ThreadingTCPServer):
    """An HTTP/1.1 stand-in for one replica on a free loopback port, keeping a ledger of the requests
    it received, (method, path, X-Request-ID), in order. It answers GETs, and POSTs too unless
    told to `drop` them: then it reads the whole request and closes the connection without a word
    (`close`: FIN), or resets it (`reset`: RST), as a worker killed while working on it would."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, post="answer"):
        self.post, self.ledger, self.lock = post, [], threading.Lock()
        super().__init__(("127.0.0.1", 0), _BackendHandler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def seen(self, method="POST"):
        with self.lock:
            return [request_id for seen_method, _, request_id in self.ledger if seen_method == method]

    def stop(self):
        self.shutdown()
        self.server_close()


class _BackendHandler(socketserver.StreamRequestHandler):
    timeout = 10  # nginx's idle kept-alive connections are let go, and the thread ends

    def handle(self):
        while True:
            try:
                request_line = self.rfile.readline()
                headers = {}
                while (line := self.rfile.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                self.rfile.read(int(headers.get("content-length", 0)))
            except (OSError, ValueError):
                return
            if not request_line:
                return
            method, path, _ = request_line.decode("latin-1").split(" ", 2)
            with self.server.lock:
                self.server.ledger.append((method, path, headers.get("x-request-id")))
            if method == "POST" and self.server.post != "answer":
                if self.server.post == "reset":  # SO_LINGER 0: close() sends RST
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                return
            body = b'{"ok": true}'
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


@pytest.fixture
def stub_backends():
    """Start Backend()s for one test; stopped after it."""
    started = []

    def start(*posts):
        started.extend(Backend(post) for post in posts)
        return started[-len(posts):]

    yield start
    for backend in started:
        backend.stop()


@pytest.fixture(scope="module", autouse=True)
def nginx_image():
    """The stand-in of the compose file's nginx image (built once, then reused)."""
    return stand_in(NGINX_IMAGE)


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    """Two gunicorns of the app (one worker each: the machine has two cores) for the tests that
    leave them running."""
    directory = tmp_path_factory.mktemp("backends")
    started = [Server(workers=1, log_path=directory / f"gunicorn{i}.log") for i in range(2)]
    try:
        yield [server.wait_ready() for server in started]
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def nginx(tmp_path):
    """Start nginx in front of the given gunicorns or Backends (an address: nothing listens there);
    stopped after the test."""
    started = []

    def start(servers, rate_limit=UNLIMITED):
        addresses = [s if isinstance(s, str) else f"127.0.0.1:{s.port}" for s in servers]  # str: no server
        running = Nginx(tmp_path / f"nginx{len(started)}", addresses, rate_limit)
        started.append(running)
        return running.start()

    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="module")
def digits(mnist, predictor):
    """Ten MNIST test digits as PNG bytes, with their labels: the first ten the model reads right
    (what nginx must pass on unchanged; the model's accuracy is measured elsewhere)."""
    pngs = [(image_bytes(array), int(label)) for array, label in zip(mnist["x_test"][:20], mnist["y_test"][:20])]
    read = predictor.classify(np.stack([preprocess_image(png) for png, _ in pngs]), 0.5).digits
    return [(png, label) for (png, label), digit in zip(pngs, read) if digit == label][:10]


def predict(url, png, session=requests):
    return session.post(url + "/predict", data=png, headers={"Content-Type": "image/png"}, timeout=30)


def test_render_is_what_the_nginx_image_does():
    """For one address, render() gives what the image's entrypoint (20-envsubst-on-templates.sh)
    writes: envsubst limited to the variables the container defines, its usual ones included."""
    env = {"NGINX_PORT": "80", "APP_SERVER": "app:5000", "RATE_LIMIT": "10r/s", "MAX_CONTENT_LENGTH": "4194304",
           "NGINX_RESOLVER": "127.0.0.11",
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "HOSTNAME": "nginx", "NGINX_VERSION": "1.28.0"}
    defined = " ".join(f"${{{name}}}" for name in env)
    rendered = subprocess.run(["envsubst", defined], input=TEMPLATE.read_text(), env=env,
                              capture_output=True, text=True, check=True).stdout
    assert rendered == render(["app:5000"], **env)


def test_resolver_is_the_containers_own_dns_server():
    """The script compose mounts into the image's entrypoint takes the first nameserver only (Podman
    lists aardvark-dns first, then the host's servers, which know no `app`)."""
    script = "/docker-entrypoint.d/15-container-resolver.envsh"
    result = subprocess.run(
        [PODMAN, "run", "--rm", "--dns", "10.89.7.1", "--dns", "192.0.2.53", "--volume",
         f"{ROOT / 'dockerFlaskService/nginx/entrypoint.d/15-container-resolver.envsh'}:{script}:ro",
         NGINX_IMAGE, "sh", "-c", f'test -x {script} && . {script} && echo "$NGINX_RESOLVER"'],
        capture_output=True, text=True, env=environment(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "10.89.7.1"


def test_config_passes_nginx_t(tmp_path):
    """`nginx -t` accepts the rendered template, with one backend and with several."""
    for addresses in (["127.0.0.1:5000"], ["127.0.0.1:5001", "127.0.0.1:5002"]):
        result = subprocess.run(Nginx(tmp_path, addresses).command("-t"), capture_output=True, text=True,
                                env=environment())
        assert result.returncode == 0, result.stderr
        assert "test is successful" in result.stderr


def test_requests_spread_over_both_instances(backends, nginx, digits):
    """200 predictions through nginx: each instance answers a fair share, every answer right."""
    proxy = nginx(backends)
    with requests.Session() as session:
        for i in range(200):
            png, label = digits[i % len(digits)]
            response = predict(proxy.url, png, session)
            assert response.status_code == 200, response.text
            assert response.json()["digit"] == label
    served = [line["upstream_addr"] for line in proxy.log(1 + 200) if line["uri"] == "/predict"]
    counts = {f"127.0.0.1:{s.port}": served.count(f"127.0.0.1:{s.port}") for s in backends}
    print(f"\n200 predictions through nginx, per instance: {sorted(counts.values())}")
    assert sum(counts.values()) == 200, served
    assert min(counts.values()) >= 80, counts  # round robin: 100 each, give or take


def test_rate_limit_answers_429_json(backends, nginx, digits):
    """At 1 prediction/s with a burst of 20, 40 quick requests: the first 21 pass, the rest are
    429 with the JSON error and Retry-After; other routes are not limited."""
    proxy = nginx(backends, rate_limit="1r/s")
    started = time.monotonic()
    with requests.Session() as session:
        responses = [predict(proxy.url, digits[0][0], session) for _ in range(40)]
        health = [session.get(proxy.url + "/health/ready").status_code for _ in range(40)]
    elapsed = time.monotonic() - started
    passed = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    print(f"\nat 1r/s, burst 20: {len(passed)} of 40 passed, {len(refused)} got 429 in {elapsed:.1f} s")
    assert len(passed) + len(refused) == 40
    assert 21 <= len(passed) <= 21 + int(elapsed) + 1
    for response in refused:
        assert_error(response, 429, "too_many_requests")
        assert response.headers["Retry-After"] == "1"
    assert health == [200] * 40


def test_oversized_body_gets_413_json_from_nginx(backends, nginx):
    """One byte over MAX_CONTENT_LENGTH is refused by nginx itself, in the app's JSON shape; a body
    of exactly the limit is passed on to the app (which answers it, here with its own 4xx)."""
    proxy = nginx(backends)
    too_large = requests.post(proxy.url + "/predict", data=b"\0" * (MAX_CONTENT_LENGTH + 1),
                              headers={"Content-Type": "image/png"}, timeout=30)
    assert_error(too_large, 413, "payload_too_large")
    at_limit = requests.post(proxy.url + "/predict", data=b"\0" * MAX_CONTENT_LENGTH,
                             headers={"Content-Type": "image/png"}, timeout=30)
    assert at_limit.status_code == 400, at_limit.text
    assert at_limit.json()["code"] != "payload_too_large"
    log = {line["status"]: line for line in proxy.log(1 + 2)}
    assert log[413]["upstream_addr"] == ""  # never reached a replica
    assert log[400]["upstream_addr"] != ""


def test_metrics_are_not_public(backends, nginx):
    """/metrics is for Prometheus on the internal network; through nginx it is a JSON 404."""
    assert_error(requests.get(nginx(backends).url + "/metrics", timeout=5), 404, "not_found")


def post_ids(url, path, count, prefix):
    """`count` POSTs one after another, each with its own X-Request-ID: {id: response}."""
    responses = {}
    with requests.Session() as session:
        for i in range(count):
            request_id = f"{prefix}-{i}"
            responses[request_id] = session.post(url + path, data=b"x", timeout=10, headers={
                "Content-Type": "image/png", "X-Request-ID": request_id})
    return responses


@pytest.mark.parametrize("death", ("close", "reset"))
def test_post_that_reached_an_instance_is_not_retried(stub_backends, nginx, death):
    """A POST that an instance received, and then died on without answering (its connection closed or
    reset, as when the OOM killer takes the worker), is answered 502 and never sent to the other
    instance: a request that kills one replica must not go on to kill the next. The ledger: every
    request reached exactly one instance."""
    dying, healthy = stub_backends(death, "answer")
    proxy = nginx([dying, healthy])
    responses = post_ids(proxy.url, "/predict", 6, death)
    died_on, answered_by = dying.seen(), healthy.seen()
    print(f"\n{death}: {len(died_on)} POSTs died on the first instance, {len(answered_by)} answered by the other")
    assert died_on, "round robin never sent a POST to the dying instance: the test proved nothing"
    assert sorted(died_on + answered_by) == sorted(responses)  # each one once, on one instance
    for request_id in died_on:
        assert_error(responses[request_id], 502, "bad_gateway")
    for request_id in answered_by:
        assert responses[request_id].status_code == 200
    lines = [line for line in proxy.log(1 + 6) if line["method"] == "POST"]
    assert [line for line in lines if ", " in line["upstream_addr"]] == []


def test_post_refused_by_an_instance_is_retried(stub_backends, nginx):
    """A POST to an instance that refuses the connection (not started, restarting) cannot have reached
    it: nginx sends it to the other instance, and every request is answered, each once."""
    [healthy] = stub_backends("answer")
    refusing = f"127.0.0.1:{free_port()}"  # nothing listens there
    proxy = nginx([refusing, healthy])
    responses = post_ids(proxy.url, "/predict", 6, "refused")
    assert [r.status_code for r in responses.values()] == [200] * 6
    assert sorted(healthy.seen()) == sorted(responses)
    retried = [line for line in proxy.log(1 + 6)
               if line["method"] == "POST" and line["upstream_addr"] == f"{refusing}, 127.0.0.1:{healthy.port}"]
    print(f"\nrefused: {len(retried)} of 6 POSTs retried on the other instance")
    assert retried and all(line["upstream_status"] == "502, 200" for line in retried)


@pytest.mark.parametrize("path", ("/read", "/feedback", "/v2/models/mnist/infer", "/v2/models/mnist/versions/1/infer"))
def test_rate_limit_covers_every_inference_route(stub_backends, nginx, path):
    """/read, /feedback and the V2 infer routes share /predict's limit: at 1 request/s with a burst of
    20, 40 quick POSTs: 21 (and one per second elapsed) reach the instance, the rest get nginx's 429."""
    [backend] = stub_backends("answer")
    proxy = nginx([backend], rate_limit="1r/s")
    started = time.monotonic()
    responses = post_ids(proxy.url, path, 40, "burst")
    elapsed = time.monotonic() - started
    passed = [i for i, r in responses.items() if r.status_code == 200]
    refused = [r for r in responses.values() if r.status_code == 429]
    print(f"\n{path} at 1r/s, burst 20: {len(passed)} of 40 passed, {len(refused)} got 429 in {elapsed:.1f} s")
    assert len(passed) + len(refused) == 40
    assert 21 <= len(passed) <= 21 + int(elapsed) + 1
    assert sorted(backend.seen()) == sorted(passed)
    for response in refused:
        assert_error(response, 429, "too_many_requests")


def under_load(proxy, digits, at, action, total=400, clients=4):
    """`total` predictions from `clients` threads; `action()` runs once, as soon as `at` of them
    have been answered. The outcomes, in the order they came: (status or error, digit, label)."""
    results, lock, done = [], threading.Lock(), threading.Event()

    def client(index):
        with requests.Session() as session:
            for i in range(index, total, clients):
                png, label = digits[i % len(digits)]
                try:
                    response = predict(proxy.url, png, session)
                    outcome = (response.status_code, response.json().get("digit"), label)
                except requests.RequestException as e:
                    outcome = (repr(e), None, label)
                with lock:
                    results.append(outcome)
                    if len(results) == at and not done.is_set():
                        done.set()
                        action()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert done.is_set() and len(results) == total
    return results


def kill_instance(server):
    """SIGKILL gunicorn's master and workers at once, as when a container or its node dies."""
    for victim in [server.process.pid, *server.workers()]:
        os.kill(victim, signal.SIGKILL)


@pytest.mark.slow
def test_instance_killed_mid_load_loses_only_requests_it_had_received(start_server, nginx, digits):
    """400 predictions from 4 clients; one instance is SIGKILLed a third of the way through.
    Requests it had not received (connection refused) are retried on the other instance and
    answered 200 with the right digit. Requests it had received are not sent again (a request
    that killed one instance must not kill the next): nginx answers them 502 in the JSON shape, or,
    for a response the dead instance had begun, the client sees it cut off. At most one of these
    per client (4), each as nginx logged it. Once both instances are gone, nginx answers 502."""
    first, second = start_server(workers=1, wait=False), start_server(workers=1, wait=False)
    first.wait_ready(), second.wait_ready()
    proxy = nginx([first, second])
    total = 400
    results = under_load(proxy, digits, total // 3, lambda: kill_instance(first), total)
    first.process.wait()

    dead = f"127.0.0.1:{first.port}"
    failed = [r for r in results if r[0] != 200 or r[1] != r[2]]
    cut = (proxy.directory / "error.log").read_text().count(
        f'upstream prematurely closed connection while reading upstream, client: 127.0.0.1, server: , '
        f'request: "POST /predict HTTP/1.1", upstream: "http://{dead}/predict"')
    lines = [line for line in proxy.log(1 + total) if line["uri"] == "/predict"]
    not_retried = [line for line in lines if line["upstream_addr"] == dead and line["status"] == 502]
    retried = [line for line in lines if line["upstream_addr"].startswith(f"{dead}, ")]
    print(f"\nSIGKILL: {total} requests, {len(retried)} refused and retried on the other instance, "
          f"{total - len(failed)} answered right, {len(not_retried)} answered 502 and {cut} cut off mid-response")
    assert all(r[0] == 502 or "IncompleteRead" in str(r[0]) for r in failed), failed
    assert len([r for r in failed if r[0] == 502]) == len(not_retried)
    assert len(failed) == len(not_retried) + cut <= 4
    assert all(line["status"] == 200 for line in retried)
    assert failed or retried, "the kill met no request: the test proved nothing"

    kill_instance(second)
    second.process.wait()
    assert_error(predict(proxy.url, digits[0][0]), 502, "bad_gateway")


@pytest.mark.slow
def test_instance_stopped_mid_load_loses_no_request(start_server, nginx, digits):
    """As a rolling update does: SIGTERM to one instance a third of the way through 400
    predictions; it drains and exits 0, and every request is answered 200 with the right digit.
    The draining worker closes its listening socket at once (after taking what was queued on it),
    so nginx's new connections are refused and resent to the other instance, never queued on one
    that exits and resets them after nginx wrote its POST."""
    first, second = start_server(workers=1, wait=False), start_server(workers=1, wait=False)
    first.wait_ready(), second.wait_ready()
    proxy = nginx([first, second])
    total = 400
    results = under_load(proxy, digits, total // 3, first.process.terminate, total)
    assert first.process.wait(timeout=30) == 0
    stopped = f"127.0.0.1:{first.port}"
    failed = [r for r in results if r[0] != 200 or r[1] != r[2]]
    lines = [line for line in proxy.log(1 + total) if line["uri"] == "/predict"]
    retried = [line for line in lines if line["upstream_addr"].startswith(f"{stopped}, ")]
    print(f"\nSIGTERM: {total} requests, {len(failed)} lost, {len(retried)} refused by the draining instance "
          f"and resent to the other")
    assert failed == []
    assert all(line["status"] == 200 for line in retried)
