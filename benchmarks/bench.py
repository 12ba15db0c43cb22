"""Side-by-side speed of the service, the original approach and a Flask ceiling, in one run.

`make bench` (or `python benchmarks/bench.py`) starts three gunicorns with the same settings
(flaskService/gunicorn.conf.py) on free loopback ports -- the service, the original approach
(Keras `model.predict` per request) and a constant-JSON ceiling -- drives each with wrk, and prints
a table: requests/s, p50 and p99 latency and ratios for single uploads at 8 connections; digits/s
for 256-digit batches at 2 connections; time from start to ready and RSS per worker. Each row also
gives the workers' CPU time per request, which other load on the machine hardly moves. The same
figures go to benchmarks/results.json and, as a table for the README, benchmarks/results.md (both
rewritten by every run, so not committed).

A shared machine's speed drifts by tens of percent within a minute, and with only 8 keep-alive
connections gunicorn's workers sometimes split them unevenly (the worker that wakes first accepts
them all, and the other idles for the whole run). So a run that leaves a worker mostly idle is run
again (the table says how many runs it took), and single uploads are measured in rounds: each
round runs the ceiling, the original and the service back to back, ratios are taken within a round,
and the table gives the median over rounds of every figure; results.json keeps every round.

`--quick` runs every row for a second with one worker each, so the test suite can check that the
script still works; its figures mean nothing.
"""
import argparse
import io
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "flaskService" / "gunicorn.conf.py"
DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"
BATCH = 256  # the API's largest batch
# With a few keep-alive connections, gunicorn's worker that wakes first sometimes accepts them all
# and the other idles: that measures the kernel's luck, not the server, and halves any figure. A run
# whose least busy worker did under half its share is run again, up to MAX_ATTEMPTS times.
BALANCED = 0.5
MAX_ATTEMPTS = 4
V2_MODEL = "/v2/models/mnist"
TICKS = os.sysconf("SC_CLK_TCK")  # /proc counts CPU time in these per second

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

def mnist_digits():
    """MNIST test digits (uint8, white on black): MNIST_NPZ, else ../shared/data/mnist.npz."""
    with np.load(os.environ.get("MNIST_NPZ") or DEFAULT_MNIST) as data:
        return data["x_test"]


def png(image):
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def canvas_png(digit):
    """What the drawing page sends: a 280x280 RGBA canvas, black strokes on transparent."""
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC))
    return png(Image.fromarray(rgba, "RGBA"))


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


class Gunicorn:
    """One gunicorn with flaskService/gunicorn.conf.py on a free loopback port; its log and temp files
    go to `work_dir`."""

    def __init__(self, name, app, ready_path, gunicorn_args, workers, work_dir):
        self.name = name
        self.ready_path = ready_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(work_dir) / f"{name}.log"
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": str(workers),
               "TMPDIR": str(work_dir)}
        command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), *gunicorn_args,
                   *([app] if app else [])]
        self.started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.ready_s = self.all_ready_s = None

    def wait_ready(self, timeout=120):
        """Wait until every worker is ready; sets `ready_s`, seconds from start until the first worker
        answers `ready_path` (200; for the reference apps, any status), and `all_ready_s`, until the
        last worker has finished starting (its CPU time stops growing: any one worker may answer
        the probe, so the probe alone cannot tell)."""
        deadline = self.started + timeout
        while self.ready_s is None:
            self._check_alive(deadline)
            try:
                status, _ = http(self.url + self.ready_path, timeout=5)
                if status == 200 or self.ready_path != "/health/ready":
                    self.ready_s = time.monotonic() - self.started
            except OSError:
                time.sleep(0.05)
        cpu, changed = None, time.monotonic()
        while time.monotonic() - changed < 0.5:
            self._check_alive(deadline)
            now = self.worker_cpu()
            if now != cpu:
                cpu, changed = now, time.monotonic()
            time.sleep(0.05)
        self.all_ready_s = max(self.ready_s, changed - self.started)
        self.worker_start_cpu_s = sum(cpu.values()) / TICKS / max(1, len(cpu))
        # The master's own CPU and its finished children's: the service converts its model there.
        self.master_start_cpu_s = sum(_cpu_ticks(self.process.pid, children=True) or (0,)) / TICKS
        return self

    def _check_alive(self, deadline):
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name}: gunicorn exited with {self.process.returncode}:\n{self.log()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{self.name}: not ready in time:\n{self.log()}")

    def workers(self):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def worker_cpu(self):
        """{pid: CPU ticks so far} for every worker."""
        ticks = {pid: _cpu_ticks(pid) for pid in self.workers()}
        return {pid: sum(t) for pid, t in ticks.items() if t is not None}

    def cpu_ticks(self, worker_cpu):
        """CPU ticks of all workers so far, given `worker_cpu()` of this moment, with those of workers
        already gone (max_requests recycles them), which the kernel adds to the master's children's
        time when it reaps them."""
        reaped = _cpu_ticks(self.process.pid, children=True) or (0, 0, 0, 0)
        return sum(worker_cpu.values()) + reaped[2] + reaped[3]

    def worker_rss_mb(self):
        out = subprocess.run(["ps", "-o", "rss=", "--ppid", str(self.process.pid)],
                             capture_output=True, text=True).stdout
        return [round(int(kb) / 1024) for kb in out.split()]

    def log(self):
        return self.log_path.read_text(errors="replace")[-4000:]

    def terminate(self):
        if self.process.poll() is None:
            self.process.terminate()

    def wait_stopped(self):
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _cpu_ticks(pid, children=False):
    """(utime, stime[, cutime, cstime]) of a process from /proc, or None once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return tuple(int(f) for f in fields[11:15 if children else 13])


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


def run_wrk(wrk, script, url, body_path, content_type, connections, seconds):
    """POST the body at `url` for `seconds` over `connections` connections -> wrk's figures."""
    env = {**os.environ, "BENCH_BODY": str(body_path), "BENCH_CONTENT_TYPE": content_type}
    # One wrk thread: on a small machine every core wrk takes is one the servers lose, and one
    # thread drives far more than the ceiling answers.
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")
    figures = json.loads(line[len("BENCH "):])
    elapsed = figures["duration_us"] / 1e6
    ok = figures["requests"] - figures["non_2xx"]
    return {"requests": figures["requests"], "ok": ok, "errors": figures["non_2xx"] + figures["socket_errors"],
            "requests_per_s": round(ok / elapsed, 1), "p50_ms": round(figures["p50_us"] / 1000, 2),
            "p99_ms": round(figures["p99_us"] / 1000, 2)}


# --- the run ----------------------------------------------------------------------------------

def machine():
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory / 2**30, 1),
            "os": platform.platform(), "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 s per row, 1 worker: checks the script, not the speed")
    parser.add_argument("--seconds", type=int, help="length of each wrk run (default 4, quick 1)")
    parser.add_argument("--rounds", type=int, help="rounds of the single-upload rows (default 5, quick 1)")
    parser.add_argument("--connections", type=int, default=8, help="connections for single uploads (default 8)")
    parser.add_argument("--batch-connections", type=int, default=2, help="connections for 256-digit batches (default 2)")
    parser.add_argument("--workers", type=int, help="WEB_CONCURRENCY for every server (default: the config's, quick 1)")
    parser.add_argument("--worker-class", help="override gunicorn's worker class (sync, gthread) for every server")
    parser.add_argument("--threads", type=int, help="override gunicorn's threads per worker for every server")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results.json",
                        help="where the JSON goes; the markdown table goes next to it as .md")
    args = parser.parse_args(argv)
    seconds = args.seconds or (1 if args.quick else 4)
    rounds = args.rounds or (1 if args.quick else 5)
    workers = args.workers or (1 if args.quick else int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1)))
    warmup = 0 if args.quick else 2
    gunicorn_args = [*(["--worker-class", args.worker_class] if args.worker_class else []),
                     *(["--threads", str(args.threads)] if args.threads else [])]
    wrk = ensure_wrk()

    digits = mnist_digits()
    results = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "settings": {"seconds": seconds, "rounds": rounds, "batch_seconds": 3 * seconds,
                            "connections": args.connections,
                            "batch_connections": args.batch_connections, "workers": workers,
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

        uploads = {"28x28 PNG": body_file("digit.mp", multipart(png(Image.fromarray(digits[0])))),
                   "280x280 canvas PNG": body_file("canvas.mp", multipart(canvas_png(digits[0])))}
        try:
            # The service starts alone, so its time to ready is not shared with the other two, and from
            # an empty temp directory: it converts its model as a fresh container does. The other two
            # then find that conversion (their gunicorn.conf.py makes it too) and start sooner.
            servers["service"] = Gunicorn("service", None, "/health/ready", gunicorn_args, workers, tmp).wait_ready()
            servers["original"] = Gunicorn("original", "benchmarks.original_app:create_app()", "/predict",
                                           gunicorn_args, workers, tmp)
            servers["ceiling"] = Gunicorn("ceiling", "benchmarks.original_app:create_ceiling_app()", "/predict",
                                          gunicorn_args, workers, tmp)
            for server in servers.values():
                server.wait_ready()

            def measure(label, server, path, body, connections, digits_per_request=1, seconds=seconds, warm=True):
                """wrk runs until one spreads its load over every worker (or MAX_ATTEMPTS) -> a row of figures."""
                body_path, content_type = body
                status, answer = http(server.url + path, body_path.read_bytes(), content_type)
                if status != 200:
                    raise RuntimeError(f"{label}: {server.name} answered {status}: {answer[:300]!r}")
                if warm and warmup:
                    run_wrk(wrk, script, server.url + path, body_path, content_type, connections, warmup)
                for attempt in range(1, MAX_ATTEMPTS + 1):
                    per_worker_before = server.worker_cpu()
                    cpu_before = server.cpu_ticks(per_worker_before)
                    row = {"name": label, "server": server.name, "path": path, "connections": connections,
                           "digits_per_request": digits_per_request,
                           **run_wrk(wrk, script, server.url + path, body_path, content_type, connections, seconds)}
                    # CPU the workers spent per request: unlike requests/s, it hardly moves when other
                    # processes share the machine.
                    per_worker_after = server.worker_cpu()
                    cpu_ms = (server.cpu_ticks(per_worker_after) - cpu_before) / TICKS * 1000
                    row["worker_cpu_ms_per_request"] = round(cpu_ms / max(1, row["requests"]), 3)
                    row["worker_spread"] = spread(per_worker_before, per_worker_after)
                    row["attempts"] = attempt
                    if row["worker_spread"] >= BALANCED:
                        break
                if digits_per_request > 1:
                    row["digits_per_s"] = round(row["requests_per_s"] * digits_per_request)
                print(f"  {label:<52} {row['requests_per_s']:>9.1f} req/s  p50 {row['p50_ms']:.2f} ms"
                      f"  p99 {row['p99_ms']:.2f} ms  worker CPU {row['worker_cpu_ms_per_request']:.2f} ms/request"
                      f"  spread {row['worker_spread']:.2f} ({row['attempts']} run{'s' * (row['attempts'] > 1)})",
                      file=sys.stderr, flush=True)
                return row

            runs = {}  # label -> one row per round
            for round_number in range(rounds):
                print(f"round {round_number + 1} of {rounds}", file=sys.stderr, flush=True)
                for upload, body in uploads.items():
                    trio = [measure(f"{title}, {upload}", servers[name], "/predict", body, args.connections,
                                    warm=round_number == 0)
                            for title, name in (("Flask ceiling", "ceiling"), ("original approach", "original"),
                                                ("/predict", "service"))]
                    ceiling, original = trio[0]["requests_per_s"], trio[1]["requests_per_s"]
                    for row in trio:
                        row["vs_ceiling"] = round(row["requests_per_s"] / ceiling, 3)
                        row["vs_original"] = round(row["requests_per_s"] / original, 1)
                        runs.setdefault(row["name"], []).append(row)
            results["rows"] += [median_row(rows) for rows in runs.values()]

            batch = digits[1:1 + BATCH]
            service = servers["service"]
            pixels = body_file("pixels.json", pixels_json(batch))
            # Batches are compared with nothing, so they need no rounds: one longer run each.
            batch_seconds = results["settings"]["batch_seconds"]
            results["rows"].append(measure(f"/predict JSON pixels, {BATCH} digits", service, "/predict", pixels,
                                           args.batch_connections, BATCH, batch_seconds))
            results["rows"].append(measure(f"/predict JSON pixels, {BATCH} digits, preprocess=none", service,
                                           "/predict?preprocess=none", pixels, args.batch_connections, BATCH,
                                           batch_seconds))
            status, metadata = http(service.url + V2_MODEL)
            if status == 200:
                input_name = json.loads(metadata)["inputs"][0]["name"]
                results["rows"].append(measure(f"V2 infer JSON FP32, {BATCH} digits", service, V2_MODEL + "/infer",
                                               body_file("v2.json", v2_json(batch, input_name)),
                                               args.batch_connections, BATCH, batch_seconds))
            else:
                results["v2"] = f"not measured: GET {V2_MODEL} answered {status}"

            for name, server in servers.items():
                results["servers"][name] = {
                    "ready_s": round(server.ready_s, 2), "all_ready_s": round(server.all_ready_s, 2),
                    "master_start_cpu_s": round(server.master_start_cpu_s, 2),
                    "worker_start_cpu_s": round(server.worker_start_cpu_s, 2), "worker_rss_mb": server.worker_rss_mb()}
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


def spread(before, after):
    """How evenly the workers shared a run, from {pid: CPU ticks} before and after it: the least busy
    worker's CPU over the mean (1 = even, 0 = one worker idle). Workers replaced during the run
    (max_requests) cannot be told apart, so such a run counts as even."""
    deltas = [after[pid] - before[pid] for pid in after if pid in before]
    if len(deltas) != len(after) or len(deltas) < 2 or not sum(deltas):
        return 1.0
    return round(min(deltas) / (sum(deltas) / len(deltas)), 2)


def median_row(rows):
    """The rounds of one scenario -> one row: the median of every figure, the sums of the counts,
    and each round's requests/s."""
    row = dict(rows[0])
    for key in ("requests_per_s", "p50_ms", "p99_ms", "worker_cpu_ms_per_request", "vs_ceiling", "vs_original"):
        row[key] = round(float(np.median([r[key] for r in rows])), 3)
    for key in ("requests", "ok", "errors", "attempts"):
        row[key] = sum(r[key] for r in rows)
    row["rounds_requests_per_s"] = [r["requests_per_s"] for r in rows]
    return row


def table(results):
    """The run as the markdown the README shows: one table, then the machine and start-up figures."""
    lines = ["| Scenario | Conns | Requests/s | Digits/s | p50 ms | p99 ms | × ceiling | × original "
             "| Worker CPU ms/req |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in results["rows"]:
        lines.append(f"| {row['name']} | {row['connections']} | {row['requests_per_s']:,.1f} "
                     f"| {row.get('digits_per_s', row['requests_per_s']):,.0f} | {row['p50_ms']:.2f} "
                     f"| {row['p99_ms']:.2f} | {_ratio(row, 'vs_ceiling', '.2f')} | {_ratio(row, 'vs_original', ',.1f')} "
                     f"| {row['worker_cpu_ms_per_request']:.2f} |")
    m, s = results["machine"], results["settings"]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; {m['os']}, Python {m['python']}; "
              f"load average {m['load_average_before'][0]} before, {m['load_average_after'][0]} after. "
              f"{s['workers']} workers per server "
              f"{' '.join(s['gunicorn_args']) or '(flaskService/gunicorn.conf.py)'}; single uploads: median of "
              f"{s['rounds']} rounds of {s['seconds']} s, batches: {s['batch_seconds']} s; "
              f"{results['started']}."]
    runs = [(row["attempts"], row.get("rounds_requests_per_s", [0])) for row in results["rows"]]
    repeated = sum(attempts - len(rounds) for attempts, rounds in runs)
    lines.append(f"- wrk runs repeated because one worker got (nearly) all the connections: {repeated} "
                 f"of {sum(attempts for attempts, _ in runs)}")
    for name, server in results["servers"].items():
        lines.append(f"- {name}: first worker ready {server['ready_s']:.1f} s after start, all {server['all_ready_s']:.1f} s; "
                     f"start-up CPU {server['master_start_cpu_s']:.1f} s in the master, "
                     f"{server['worker_start_cpu_s']:.1f} s per worker; RSS per worker "
                     f"{', '.join(f'{mb} MB' for mb in server['worker_rss_mb'])}")
    if "v2" in results:
        lines.append(f"- V2 infer {results['v2']}")
    return "\n".join(lines) + "\n"


def _ratio(row, key, fmt):
    return format(row[key], fmt) + "×" if key in row else ""


if __name__ == "__main__":
    main()
