"""Side-by-side speed of the service, a Flask ceiling, the original approach and the peers a user
would pick instead (BentoML, LitServe), in one run.

`make bench` (or `python benchmarks/bench.py --peers-python .venv-bench/bin/python`) starts every
server with 2 workers (WEB_CONCURRENCY) on free loopback ports -- the service, a constant-JSON
Flask ceiling and the original approach (Keras `model.predict` per request) under
flaskService/gunicorn.conf.py, and BentoML and LitServe serving the same LiteRT model
(benchmarks/peers/) -- and drives each with wrk over keep-alive connections. It prints a table:
requests/s, latency, ratios and CPU per request for single 28x28 uploads at 1, 2, 4, 8, 16 and 64
connections, the 280x280 canvas, 256-digit batches, POST /read with a 4-digit handwritten number
(the service alone: no other server reads numbers; issue 24's target is at most 5 ms of server
CPU per number), then time to ready and memory per worker. The
figures go to benchmarks/results.json (every round of every row) and benchmarks/results.md (the
table for benchmarks/README.md); both are rewritten by every run, so not committed.

Honest by construction: every row is measured in every round (3 by default), each round runs the
servers of a comparison back to back (ratios are taken within a round), and no run is repeated or
dropped. The table gives each row's median with the slowest and fastest round (max/min: how much
the figure moved), the worst round's p99, the range of each ratio over the rounds, and how evenly
gunicorn's workers shared the load (least busy worker's CPU over the mean; 1 = even). CPU time per
request (all of a server's processes, from /proc) hardly moves when other processes share the
machine; requests/s does.

`--quick` runs a short version with one worker per server, so the test suite can check that the
script still works (peers only when --peers-python is given); its figures mean nothing.

Adding a row: a body in `bodies` and a `Comparison` in `plan()`.
"""
import argparse
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the numbers /read is sent come from modelTrain/evalsets/numbers.py
from modelTrain.evalsets.numbers import number  # noqa: E402

GUNICORN_CONF = ROOT / "flaskService" / "gunicorn.conf.py"
DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"
BATCH = 256  # the API's largest batch
CONNECTIONS = (1, 2, 4, 8, 16, 64)  # keep-alive client connections for single uploads
COMPARED_AT = 8  # connections for the rows compared only once (canvas, original approach)
V2_MODEL = "/v2/models/mnist"
NUMBER_KINDS = ("separate", "touching")  # /read rows: 4 MNIST test digits with gaps, and touching
NUMBER_DIGITS = 4
READ_CPU_TARGET_MS = 5  # issue 24: server CPU per 4-digit number
TICKS = os.sysconf("SC_CLK_TCK")  # /proc counts CPU time in these per second
PEERS = ("bentoml", "litserve")

# wrk posts one body file, then reports what it measured as one JSON line.
WRK_SCRIPT = r"""
local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


# --- what is sent -----------------------------------------------------------------------------

def mnist_test():
    """MNIST test digits (uint8, white on black) and their labels: MNIST_NPZ, else ../shared/data/mnist.npz."""
    with np.load(os.environ.get("MNIST_NPZ") or DEFAULT_MNIST) as data:
        return data["x_test"], data["y_test"]


def png(image):
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def canvas_png(digit):
    """What the drawing page sends: a 280x280 RGBA canvas, black strokes on transparent."""
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC))
    return png(Image.fromarray(rgba, "RGBA"))


def number_png(digits, labels, kind):
    """A 4-digit handwritten number as a user sends it to /read: MNIST test digits composed side by
    side the way the /read evaluation set composes them (number 0 of modelTrain/evalsets/numbers.py), black on a
    white page, PNG -> (body, content type, the number's text)."""
    mnist = {"x_test": digits, "y_test": labels}
    composed = number(mnist, 0, kind, "paper_png", (NUMBER_DIGITS, NUMBER_DIGITS))
    return composed.data, "image/png", composed.text


def multipart(image_bytes):
    boundary = "benchboundary7MA4YWxkTrZu0gW"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"digit.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + image_bytes + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def pixels_json(digits):
    return json.dumps({"pixels": digits.tolist()}).encode(), "application/json"


def v2_json(digits, input_name):
    data = [round(v, 4) for v in (digits.astype(np.float32) / 255.0).ravel().tolist()]
    body = {"inputs": [{"name": input_name, "shape": [len(digits), 28, 28, 1], "datatype": "FP32", "data": data}]}
    return json.dumps(body).encode(), "application/json"


# --- servers ----------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, body=None, content_type=None, timeout=30):
    """(status, body bytes) for a GET, or a POST when `body` is given; any HTTP status is an answer."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type} if content_type else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Server:
    """One server process (and whatever it forks) on a free loopback port, in a process group of its
    own; its log goes to `work_dir`. `gunicorn`: its children are the workers."""

    def __init__(self, name, command, ready_path, work_dir, env=None, gunicorn=False):
        self.name = name
        self.ready_path = ready_path
        self.gunicorn = gunicorn
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(work_dir) / f"{name}.log"
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), "TMPDIR": str(work_dir), **(env or {})}
        command = [str(part).replace("{port}", str(self.port)) for part in command]
        self.started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.ready_s = self.all_ready_s = None

    @classmethod
    def gunicorn_app(cls, name, app, ready_path, work_dir, workers, gunicorn_args=()):
        command = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF, *gunicorn_args, *([app] if app else [])]
        return cls(name, command, ready_path, work_dir, {"WEB_CONCURRENCY": str(workers)}, gunicorn=True)

    def wait_ready(self, timeout=180):
        """Wait until the server is ready; sets `ready_s`, seconds from start until `ready_path`
        answers 200 (for the reference apps, any status), and `all_ready_s`, until the server's
        processes have finished starting (their CPU time stops growing: any one worker may answer
        the probe, so the probe alone cannot tell)."""
        deadline = self.started + timeout
        while self.ready_s is None:
            self._check_alive(deadline)
            try:
                status, _ = http(self.url + self.ready_path, timeout=5)
                if status == 200 or self.ready_path == "/predict":
                    self.ready_s = time.monotonic() - self.started
                    break
            except OSError:
                pass
            time.sleep(0.05)
        ticks, changed = None, time.monotonic()
        while time.monotonic() - changed < 0.5:
            self._check_alive(deadline)
            now = self.cpu_ticks()
            if now != ticks:
                ticks, changed = now, time.monotonic()
            time.sleep(0.05)
        self.all_ready_s = max(self.ready_s, changed - self.started)
        self.start_cpu_s = ticks / TICKS
        return self

    def _check_alive(self, deadline):
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name}: exited with {self.process.returncode}:\n{self.log()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{self.name}: not ready in time:\n{self.log()}")

    def processes(self):
        """The server's processes: the one started and all its descendants."""
        return [self.process.pid, *descendants(self.process.pid)]

    def cpu_ticks(self):
        """CPU ticks the server has used so far: every live process's own and its reaped children's
        (a process that exits moves its time to its parent's children's time, so none is lost)."""
        return sum(sum(_stat_ticks(pid) or (0,)) for pid in self.processes())

    def worker_ticks(self):
        """{worker pid: its own CPU ticks} for a gunicorn; {} for others (their processes differ in role)."""
        if not self.gunicorn:
            return {}
        ticks = {pid: _stat_ticks(pid) for pid in descendants(self.process.pid, depth=1)}
        return {pid: t[0] + t[1] for pid, t in ticks.items() if t is not None}

    def connections_per_worker(self):
        """How many client connections each gunicorn worker holds now, fewest first (from the
        sockets in each worker's /proc/PID/fd and the established ones to our port in /proc/net/tcp)."""
        inodes = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].split(":")[1], 16) == self.port:
                inodes.add(fields[9])
        held = []
        for pid in descendants(self.process.pid, depth=1):
            try:
                links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
            except OSError:  # gone, or an fd closed while we looked
                continue
            held.append(sum(link[len("socket:["):-1] in inodes for link in links if link.startswith("socket:[")))
        return sorted(held)

    def rss_mb(self):
        """Resident memory per worker (gunicorn: its workers; others: every process), in MB."""
        pids = descendants(self.process.pid, depth=1) if self.gunicorn else self.processes()
        pages = [_statm_pages(pid) for pid in pids]
        return [round(p * os.sysconf("SC_PAGE_SIZE") / 2**20) for p in pages if p]

    def log(self):
        return self.log_path.read_text(errors="replace")[-4000:]

    def terminate(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)

    def wait_stopped(self):
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:  # the group: whatever the server forked and left behind
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def descendants(pid, depth=None):
    """pids of a process's descendants (children only with depth=1), from every process's parent in /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # it exited while we looked
            continue
    found, level, frontier = [], 0, {pid}
    while frontier and (depth is None or level < depth):
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found += sorted(frontier)
        level += 1
    return found


def _stat_ticks(pid):
    """(utime, stime, cutime, cstime) of a process from /proc, or None once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return tuple(int(f) for f in fields[11:15])


def _statm_pages(pid):
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError):
        return 0


# --- load -------------------------------------------------------------------------------------

def ensure_wrk():
    """wrk from Debian; installed here if this process may, else a clear line saying what to do."""
    if shutil.which("wrk"):
        return shutil.which("wrk")
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "wrk"], env=env, check=False)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "wrk"], env=env, check=True)
        return shutil.which("wrk")
    sys.exit("bench: needs wrk (sudo apt-get install wrk)")


def run_wrk(wrk, script, url, body_path, content_type, connections, seconds, midway=None):
    """POST the body at `url` for `seconds` over `connections` keep-alive connections -> wrk's figures
    (and, under "midway", what `midway()` returned halfway through the run)."""
    env = {**os.environ, "BENCH_BODY": str(body_path), "BENCH_CONTENT_TYPE": content_type}
    # One wrk thread: on a small machine every core wrk takes is one the servers lose, and one
    # thread drives far more than the ceiling answers.
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = None
    if midway:
        time.sleep(seconds / 2)
        seen = midway()
    stdout, stderr = process.communicate(timeout=seconds + 60)
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{stdout}\n{stderr}")
    figures = json.loads(line[len("BENCH "):])
    elapsed = figures["duration_us"] / 1e6
    ok = figures["requests"] - figures["non_2xx"]
    return {"requests": figures["requests"], "ok": ok, "errors": figures["non_2xx"] + figures["socket_errors"],
            "requests_per_s": round(ok / elapsed, 1), "p50_ms": round(figures["p50_us"] / 1000, 2),
            "p99_ms": round(figures["p99_us"] / 1000, 2), "midway": seen}


def balance(before, after):
    """How evenly a gunicorn's workers shared a run, from {pid: CPU ticks} before and after it: the
    least busy worker's CPU over the mean (1 = even, 0 = a worker idle). None when it cannot be told:
    one worker, no CPU used, or a worker replaced during the run."""
    deltas = [after[pid] - before[pid] for pid in after if pid in before]
    if len(deltas) != len(after) or len(deltas) < 2 or not sum(deltas):
        return None
    return round(min(deltas) / (sum(deltas) / len(deltas)), 2)


# --- what is measured -------------------------------------------------------------------------

@dataclass
class Comparison:
    """Rows measured back to back in each round, and compared within it: `members` are
    (row title, server name); the upload `body` is a key of the bodies, posted at `path`."""
    label: str
    body: str
    connections: int
    members: tuple
    path: str = "/predict"
    digits_per_request: int = 1
    seconds_factor: int = 1  # batches run longer: fewer, larger requests


def plan(connections, servers, v2_available):
    """Every comparison of a round, in order. Servers not started (the peers, without their
    virtualenv) are left out of their comparisons."""
    def present(*members):
        return tuple((title, name) for title, name in members if name in servers)

    upload = "28x28 PNG"
    comparisons = [Comparison(upload, "digit", n, present(
        ("Flask ceiling", "ceiling"), ("/predict", "service"), ("BentoML", "bentoml"), ("LitServe", "litserve"),
        *([("original approach", "original")] if n == COMPARED_AT else []))) for n in connections]
    compared_at = COMPARED_AT if COMPARED_AT in connections else connections[-1]
    comparisons.append(Comparison("280x280 canvas PNG", "canvas", compared_at, present(
        ("Flask ceiling", "ceiling"), ("original approach", "original"), ("/predict", "service"))))
    # Only the service reads numbers: its rows stand alone, their figure is CPU per request.
    comparisons += [Comparison(f"{NUMBER_DIGITS}-digit number PNG, {kind}", f"number_{kind}", compared_at,
                               present(("/read", "service")), path="/read", digits_per_request=NUMBER_DIGITS)
                    for kind in NUMBER_KINDS]
    batch = f"{BATCH} digits"
    comparisons += [
        Comparison(f"JSON pixels, {batch}", "pixels", 2, present(("/predict", "service")),
                   digits_per_request=BATCH, seconds_factor=3),
        Comparison(f"JSON pixels, {batch}, preprocess=none", "pixels", 2, present(("/predict", "service")),
                   path="/predict?preprocess=none", digits_per_request=BATCH, seconds_factor=3)]
    if v2_available:
        comparisons.append(Comparison(f"JSON FP32, {batch}", "v2", 2, present(("V2 infer", "service")),
                                      path=V2_MODEL + "/infer", digits_per_request=BATCH, seconds_factor=3))
    return comparisons


def with_ratios(rows):
    """The rows of one comparison in one round -> each with its ratios to the others': × ceiling for
    every row, × original / BentoML / LitServe for the service's."""
    by_server = {row["server"]: row["requests_per_s"] for row in rows}
    for row in rows:
        if by_server.get("ceiling"):
            row["vs_ceiling"] = round(row["requests_per_s"] / by_server["ceiling"], 3)
        if row["server"] == "service":
            for other in ("original", *PEERS):
                if by_server.get(other):
                    row[f"vs_{other}"] = round(row["requests_per_s"] / by_server[other], 3)
    return rows


RATIOS = ("vs_ceiling", "vs_bentoml", "vs_litserve", "vs_original")


def summary(rounds):
    """One row's rounds -> its summary: the median, slowest and fastest round and their ratio
    (max/min), the worst p99, each ratio's range, total errors; `rounds` keeps every round."""
    rps = [r["requests_per_s"] for r in rounds]
    row = {key: rounds[0][key] for key in ("name", "server", "path", "connections", "digits_per_request")}
    row.update({
        "requests_per_s": round(float(np.median(rps)), 1), "min_requests_per_s": min(rps),
        "max_requests_per_s": max(rps), "spread": round(max(rps) / min(rps), 2) if min(rps) else None,
        "p50_ms": round(float(np.median([r["p50_ms"] for r in rounds])), 2),
        "p99_ms": round(float(np.median([r["p99_ms"] for r in rounds])), 2),
        "worst_p99_ms": max(r["p99_ms"] for r in rounds),
        "cpu_ms_per_request": round(float(np.median([r["cpu_ms_per_request"] for r in rounds])), 3),
        "errors": sum(r["errors"] for r in rounds)})
    balances = [r["worker_balance"] for r in rounds if r.get("worker_balance") is not None]
    if balances:
        row["worst_worker_balance"] = min(balances)
    splits = [r["connections_per_worker"] for r in rounds if r.get("connections_per_worker")]
    if splits:  # the most uneven split of client connections over the workers seen in any round
        row["worst_connections_per_worker"] = max(splits, key=lambda split: split[-1] - split[0])
    for key in RATIOS:
        values = [r[key] for r in rounds if key in r]
        if values:
            row[key] = round(float(np.median(values)), 3)
            row[f"{key}_range"] = [min(values), max(values)]
    if row["digits_per_request"] > 1:
        row["digits_per_s"] = round(row["requests_per_s"] * row["digits_per_request"])
    row["rounds"] = rounds
    return row


# --- the run ----------------------------------------------------------------------------------

def machine():
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory / 2**30, 1),
            "os": platform.platform(), "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()]}


def start_servers(tmp, workers, gunicorn_args, peers_python):
    """Every server, ready. The service starts alone, so its time to ready is not shared, and from an
    empty temp directory: it converts its model as a fresh container does. The others then find that
    conversion (the peers load the model through the service's Predictor, from the same cache)."""
    servers = {"service": Server.gunicorn_app("service", None, "/health/ready", tmp, workers, gunicorn_args)}
    servers["service"].wait_ready()
    servers["ceiling"] = Server.gunicorn_app("ceiling", "benchmarks.original_app:create_ceiling_app()", "/predict",
                                             tmp, workers, gunicorn_args)
    servers["original"] = Server.gunicorn_app("original", "benchmarks.original_app:create_app()", "/predict",
                                              tmp, workers, gunicorn_args)
    if peers_python:
        peer_env = {"WEB_CONCURRENCY": str(workers), "BENTOML_HOME": str(tmp / "bentoml"),
                    "BENTOML_DO_NOT_TRACK": "True", "PYTHONPATH": str(ROOT)}
        bentoml = [Path(peers_python).parent / "bentoml", "serve", "benchmarks.peers.bentoml_service:DigitClassifier",
                   "--host", "127.0.0.1", "--port", "{port}"]
        servers["bentoml"] = Server("bentoml", bentoml, "/readyz", tmp, peer_env)
        litserve = [peers_python, "-m", "benchmarks.peers.litserve_server", "--port", "{port}"]
        servers["litserve"] = Server("litserve", litserve, "/health", tmp, peer_env)
    for server in servers.values():
        server.wait_ready()
    return servers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, 1 worker: checks the script, not the speed")
    parser.add_argument("--seconds", type=int, help="length of each wrk run (default 3, quick 1)")
    parser.add_argument("--rounds", type=int, help="rounds of every row (default 3, quick 1)")
    parser.add_argument("--connections", type=int, nargs="+",
                        help=f"connections for single uploads (default {' '.join(map(str, CONNECTIONS))}, quick 2 8)")
    parser.add_argument("--workers", type=int, help="WEB_CONCURRENCY for every server (default: the config's, quick 1)")
    parser.add_argument("--worker-class", help="override gunicorn's worker class (e.g. gthread) for the gunicorns")
    parser.add_argument("--threads", type=int, help="override gunicorn's threads per worker for the gunicorns")
    parser.add_argument("--peers-python", help="python of the peers' virtualenv (make bench: .venv-bench/bin/python); "
                                               "without it the BentoML and LitServe rows are left out")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results.json",
                        help="where the JSON goes; the markdown table goes next to it as .md")
    args = parser.parse_args(argv)
    seconds = args.seconds or (1 if args.quick else 3)
    rounds = args.rounds or (1 if args.quick else 3)
    connections = tuple(args.connections or ((2, 8) if args.quick else CONNECTIONS))
    workers = args.workers or (1 if args.quick else int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1)))
    warmup = 0 if args.quick else 1
    gunicorn_args = [*(["--worker-class", args.worker_class] if args.worker_class else []),
                     *(["--threads", str(args.threads)] if args.threads else [])]
    wrk = ensure_wrk()

    digits, labels = mnist_test()
    results = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "settings": {"seconds": seconds, "rounds": rounds, "connections": list(connections), "workers": workers,
                            "gunicorn_args": gunicorn_args, "quick": args.quick},
               "servers": {}, "rows": []}
    servers = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        tmp = Path(tmp)
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT)

        def body_file(name, body_and_type):
            body, content_type = body_and_type
            path = tmp / name
            path.write_bytes(body)
            return path, content_type

        batch = digits[1:1 + BATCH]
        bodies = {"digit": body_file("digit.mp", multipart(png(Image.fromarray(digits[0])))),
                  "canvas": body_file("canvas.mp", multipart(canvas_png(digits[0]))),
                  "pixels": body_file("pixels.json", pixels_json(batch))}
        numbers = {f"number_{kind}": number_png(digits, labels, kind) for kind in NUMBER_KINDS}
        bodies.update({name: body_file(f"{name}.png", (body, content_type))
                       for name, (body, content_type, _) in numbers.items()})
        results["numbers"] = {name: {"text": text} for name, (_, _, text) in numbers.items()}
        try:
            servers = start_servers(tmp, workers, gunicorn_args, args.peers_python)
            status, metadata = http(servers["service"].url + V2_MODEL)
            if status == 200:
                bodies["v2"] = body_file("v2.json", v2_json(batch, json.loads(metadata)["inputs"][0]["name"]))
            comparisons = plan(connections, servers, status == 200)
            warmed = set()

            def measure(comparison, title, server):
                """One wrk run of one row -> its figures, CPU per request and worker balance included."""
                body_path, content_type = bodies[comparison.body]
                url = server.url + comparison.path
                if (server.name, comparison.body) not in warmed:
                    status, answer = http(url, body_path.read_bytes(), content_type)
                    if status != 200:
                        raise RuntimeError(f"{title}: {server.name} answered {status}: {answer[:300]!r}")
                    if comparison.body == "digit" and json.loads(answer)["digit"] != int(labels[0]):
                        raise RuntimeError(f"{title}: {server.name} read the digit as {json.loads(answer)['digit']}")
                    if comparison.body in results["numbers"]:  # kept, not checked: a misread costs the same
                        results["numbers"][comparison.body]["read"] = json.loads(answer)["text"]
                    if warmup:
                        run_wrk(wrk, script, url, body_path, content_type, comparison.connections, warmup)
                    warmed.add((server.name, comparison.body))
                workers_before, ticks_before = server.worker_ticks(), server.cpu_ticks()
                row = {"name": f"{title}, {comparison.label}", "server": server.name, "path": comparison.path,
                       "connections": comparison.connections, "digits_per_request": comparison.digits_per_request,
                       **run_wrk(wrk, script, url, body_path, content_type, comparison.connections,
                                 seconds * comparison.seconds_factor,
                                 midway=server.connections_per_worker if server.gunicorn else None)}
                row["connections_per_worker"] = row.pop("midway")
                # CPU all the server's processes spent per request: unlike requests/s, it hardly moves
                # when other processes share the machine.
                cpu_ms = (server.cpu_ticks() - ticks_before) / TICKS * 1000
                row["cpu_ms_per_request"] = round(cpu_ms / max(1, row["requests"]), 3)
                row["worker_balance"] = balance(workers_before, server.worker_ticks())
                print(f"  {row['name']:<52} c{row['connections']:<3} {row['requests_per_s']:>9.1f} req/s"
                      f"  p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  CPU {row['cpu_ms_per_request']:.2f}"
                      f" ms/request  balance {row['worker_balance']}  connections per worker {row['connections_per_worker']}",
                      file=sys.stderr, flush=True)
                return row

            runs = {}  # row name -> its rows, one per round
            for round_number in range(rounds):
                print(f"round {round_number + 1} of {rounds}", file=sys.stderr, flush=True)
                for comparison in comparisons:
                    rows = with_ratios([measure(comparison, title, servers[name]) for title, name in comparison.members])
                    for row in rows:
                        runs.setdefault((row["name"], row["connections"]), []).append(row)
            results["rows"] = [summary(rows) for rows in runs.values()]

            for name, server in servers.items():
                results["servers"][name] = {"ready_s": round(server.ready_s, 2),
                                            "all_ready_s": round(server.all_ready_s, 2),
                                            "start_cpu_s": round(server.start_cpu_s, 2), "rss_mb": server.rss_mb()}
        finally:
            for server in servers.values():
                server.terminate()
            for server in servers.values():
                server.wait_stopped()
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    markdown = table(results)
    args.output.with_suffix(".md").write_text(markdown)
    print(markdown)
    print(f"(written to {args.output} and {args.output.with_suffix('.md')})")
    return results


def table(results):
    """The run as the markdown benchmarks/README.md shows: one table, then the machine and start-up figures."""
    lines = ["| Scenario | Conns | Req/s (median) | Slowest–fastest round | Max/min | p50 ms | p99 ms (worst) "
             "| × ceiling | × BentoML | × LitServe | × original | CPU ms/req | Conns per worker | Worker CPU balance |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in results["rows"]:
        rate = f"{row['requests_per_s']:,.0f}"
        if "digits_per_s" in row:
            rate += f" ({row['digits_per_s']:,} digits/s)"
        ratios = " | ".join(_ratio_range(row, key) for key in RATIOS)
        lines.append(f"| {row['name']} | {row['connections']} | {rate} "
                     f"| {row['min_requests_per_s']:,.0f}–{row['max_requests_per_s']:,.0f} "
                     f"| {_optional(row.get('spread'), '.2f')} | {row['p50_ms']:.2f} "
                     f"| {row['p99_ms']:.2f} ({row['worst_p99_ms']:.2f}) | {ratios} | {row['cpu_ms_per_request']:.2f} "
                     f"| {'/'.join(map(str, row.get('worst_connections_per_worker', [])))} "
                     f"| {_optional(row.get('worst_worker_balance'), '.2f')} |")
    m, s = results["machine"], results["settings"]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; {m['os']}, Python {m['python']}; "
              f"load average {m['load_average_before'][0]} before, {m['load_average_after'][0]} after. "
              f"{s['workers']} workers per server "
              f"{' '.join(s['gunicorn_args']) or '(gunicorns: flaskService/gunicorn.conf.py)'}; every row in each of "
              f"{s['rounds']} rounds of {s['seconds']} s (batches 3x), none repeated or dropped; {results['started']}."]
    lines.append("- Max/min: the fastest round's requests/s over the slowest's. Ratios: median (range over the rounds), "
                 "each taken within a round. CPU ms/req: all of a server's processes. Conns per worker: the client "
                 "connections each gunicorn worker held halfway through a run (the most uneven round). Worker CPU "
                 "balance: the least busy worker's CPU over the mean (worst round); on a shared machine it also "
                 "shows how the kernel shared the cores.")
    for row in results["rows"]:
        if row["path"] == "/read":
            lines.append(f"- {row['name']}: {row['cpu_ms_per_request']:.2f} ms of server CPU per number "
                         f"(target: at most {READ_CPU_TARGET_MS} ms)")
    for name, sent in results.get("numbers", {}).items():
        lines.append(f"- {name}: sent {sent['text']}, read {sent.get('read', '(not sent)')}")
    errors = sum(row["errors"] for row in results["rows"])
    lines.append(f"- Errors (non-2xx or socket) over all runs: {errors}")
    for name, server in results["servers"].items():
        lines.append(f"- {name}: ready {server['ready_s']:.1f} s after start, all its processes settled "
                     f"{server['all_ready_s']:.1f} s; start-up CPU {server['start_cpu_s']:.1f} s; RSS per "
                     f"{'worker' if name in ('service', 'ceiling', 'original') else 'process'} "
                     f"{', '.join(f'{mb} MB' for mb in server['rss_mb'])}")
    return "\n".join(lines) + "\n"


def _ratio_range(row, key):
    if key not in row:
        return ""
    low, high = row[f"{key}_range"]
    return f"{row[key]:.2f}× ({low:.2f}–{high:.2f})" if low != high else f"{row[key]:.2f}×"


def _optional(value, fmt):
    return "" if value is None else format(value, fmt)


if __name__ == "__main__":
    main()
