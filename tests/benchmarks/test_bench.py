"""`make bench` in its quick mode (the script starts every server, drives every row and writes its
table and JSON), and the pieces that turn runs into the table. Shapes and arithmetic, never a speed.
The peers (BentoML, LitServe) live in the bench's own virtualenv, which the suite does not install:
here their rows are checked as the plan and the table handle them."""
import json
import subprocess
import sys

from benchmarks.bench import CONNECTIONS, NUMBER_DIGITS, NUMBER_KINDS, balance, plan, summary, table, with_ratios
from tests.helpers import ROOT


def test_quick_bench_measures_every_row(tmp_path):
    """Every row got successful requests in every round; the JSON, the markdown table and stdout agree."""
    output = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "benchmarks/bench.py", "--quick", "--output", str(output)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]

    results = json.loads(output.read_text())
    names = {(row["name"], row["connections"]) for row in results["rows"]}
    for connections in results["settings"]["connections"]:
        assert {("Flask ceiling, 28x28 PNG", connections), ("/predict, 28x28 PNG", connections)} <= names
    for expected in ("original approach, 28x28 PNG", "Flask ceiling, 280x280 canvas PNG",
                     "original approach, 280x280 canvas PNG", "/predict, 280x280 canvas PNG"):
        assert (expected, 8) in names
    assert ("/predict, JSON pixels, 256 digits", 2) in names
    reads = [row for row in results["rows"] if row["path"] == "/read"]
    assert [row["name"] for row in reads] == [f"/read, 4-digit number PNG, {kind}" for kind in NUMBER_KINDS]
    for row in reads:  # issue 24's figure: server CPU per 4-digit number
        assert row["server"] == "service" and row["digits_per_request"] == NUMBER_DIGITS == 4, row
        assert row["errors"] == 0 and row["cpu_ms_per_request"] > 0, row
        assert f"- {row['name']}: {row['cpu_ms_per_request']:.2f} ms of server CPU per number" in run.stdout
    for name, sent in results["numbers"].items():
        assert len(sent["text"]) == NUMBER_DIGITS and len(sent["read"]) > 0, (name, sent)
    for row in results["rows"]:
        assert len(row["rounds"]) == results["settings"]["rounds"]
        assert row["errors"] == 0 and all(r["ok"] > 0 for r in row["rounds"]), row
        assert row["requests_per_s"] > 0 and 0 < row["p50_ms"] <= row["worst_p99_ms"], row
        assert row["min_requests_per_s"] <= row["requests_per_s"] <= row["max_requests_per_s"]
        assert row["cpu_ms_per_request"] > 0, row
        if row["digits_per_request"] > 1:
            assert row["digits_per_s"] > 0, row
        elif row["server"] == "service":
            assert row["vs_ceiling"] > 0, row
        # One worker each in quick mode: it holds every client connection, seen midway through the run.
        assert all(r["connections_per_worker"] == [row["connections"]] for r in row["rounds"]), row
    for name in ("service", "original", "ceiling"):
        server = results["servers"][name]
        assert server["ready_s"] > 0
        assert len(server["rss_mb"]) == results["settings"]["workers"]
        assert all(mb > 0 for mb in server["rss_mb"])

    markdown = output.with_suffix(".md").read_text()
    assert markdown.startswith("| Scenario |")
    assert all(f"| {name} | {connections} |" in markdown for name, connections in names)
    assert markdown in run.stdout


def test_balance_tells_an_idle_worker_from_shared_load():
    """CPU ticks per worker pid, before and after a run -> the least busy worker's share of the mean."""
    assert balance({1: 100, 2: 200}, {1: 300, 2: 400}) == 1.0  # both did 200 ticks
    assert balance({1: 0, 2: 0}, {1: 390, 2: 10}) == 0.05  # one worker took the connections
    assert balance({1: 0, 2: 0}, {1: 250, 2: 150}) == 0.75
    assert balance({1: 0, 2: 0}, {1: 400, 3: 20}) is None  # worker 2 was replaced: cannot tell
    assert balance({1: 0}, {1: 400}) is None  # a single worker


def test_plan_compares_the_service_with_every_server_at_every_connection_count():
    servers = {"service", "ceiling", "original", "bentoml", "litserve"}
    comparisons = plan(CONNECTIONS, servers, v2_available=True)
    uploads = [c for c in comparisons if c.label == "28x28 PNG"]
    assert [c.connections for c in uploads] == list(CONNECTIONS) == [1, 2, 4, 8, 16, 64]
    for comparison in uploads:
        assert {"ceiling", "service", "bentoml", "litserve"} <= {name for _, name in comparison.members}
    assert [c.connections for c in uploads if ("original approach", "original") in c.members] == [8]
    assert any(c.path.startswith("/v2/") for c in comparisons)
    # Without the peers' virtualenv, their rows are left out rather than failing the run.
    without_peers = plan(CONNECTIONS, servers - {"bentoml", "litserve"}, v2_available=False)
    assert all(name not in ("bentoml", "litserve") for c in without_peers for _, name in c.members)
    assert not any(c.path.startswith("/v2/") for c in without_peers)
    # Only the service reads numbers: the /read rows compare with nothing.
    reads = [c for c in comparisons if c.path == "/read"]
    assert [c.body for c in reads] == ["number_separate", "number_touching"]
    assert all(c.members == (("/read", "service"),) for c in reads)


def run_row(server, rps, p99=5.0, cpu=0.5, balanced=1.0, connections=8):
    name = "/predict" if server == "service" else server
    return {"name": f"{name}, 28x28 PNG", "server": server, "path": "/predict", "connections": connections, "digits_per_request": 1,
            "requests": int(rps * 3), "ok": int(rps * 3), "errors": 0, "requests_per_s": rps, "p50_ms": 1.0,
            "p99_ms": p99, "cpu_ms_per_request": cpu, "worker_balance": balanced}


def test_ratios_are_taken_within_a_round():
    rows = with_ratios([run_row("ceiling", 4000.0), run_row("service", 2000.0), run_row("bentoml", 1000.0),
                        run_row("litserve", 1600.0)])
    service = rows[1]
    assert (service["vs_ceiling"], service["vs_bentoml"], service["vs_litserve"]) == (0.5, 2.0, 1.25)
    assert rows[2]["vs_ceiling"] == 0.25 and "vs_litserve" not in rows[2]  # peers get × ceiling only


def test_summary_keeps_every_round_and_its_spread():
    rounds = [with_ratios([run_row("ceiling", c), run_row("service", s, p99=p, balanced=b)])[1]
              for c, s, p, b in ((4000, 2000, 6.0, 0.9), (3000, 1800, 11.0, 1.0), (5000, 2400, 7.0, 0.95))]
    row = summary(rounds)
    assert row["requests_per_s"] == 2000 and (row["min_requests_per_s"], row["max_requests_per_s"]) == (1800, 2400)
    assert row["spread"] == round(2400 / 1800, 2)
    assert row["worst_p99_ms"] == 11.0 and row["p99_ms"] == 7.0
    assert row["vs_ceiling_range"] == [0.48, 0.6] and row["worst_worker_balance"] == 0.9
    assert row["rounds"] == rounds


def test_table_shows_the_range_of_every_ratio():
    rounds = [with_ratios([run_row("ceiling", c), run_row("service", s), run_row("bentoml", b)])
              for c, s, b in ((4000, 2000, 1000), (3000, 1800, 1500))]
    rows = [summary([r[i] for r in rounds]) for i in range(3)]
    results = {"rows": rows, "servers": {"service": {"ready_s": 3.0, "all_ready_s": 3.5, "start_cpu_s": 2.0,
                                                     "rss_mb": [100, 101]}},
               "machine": {"cpu": "test", "cores": 2, "memory_gb": 4, "os": "linux", "python": "3.11",
                           "load_average_before": [1.0], "load_average_after": [1.0]},
               "settings": {"workers": 2, "gunicorn_args": [], "rounds": 2, "seconds": 3}, "started": "now"}
    markdown = table(results)
    service_line = next(line for line in markdown.splitlines() if line.startswith("| /predict"))
    assert "| 1,900 | 1,800–2,000 | 1.11 |" in service_line
    assert "0.55× (0.50–0.60)" in service_line and "1.60× (1.20–2.00)" in service_line
    assert "RSS per worker 100 MB, 101 MB" in markdown


def test_peers_are_installed_by_the_bench_only():
    """BentoML and LitServe are pinned in requirements-bench.txt and appear in nothing the service,
    its tests or its image install."""
    bench = (ROOT / "requirements-bench.txt").read_text()
    assert "bentoml==" in bench and "litserve==" in bench
    for name in ("requirements.txt", "requirements-test.txt", "dockerFlaskService/Dockerfile"):
        path = ROOT / name
        if path.is_file():
            text = path.read_text().lower()
            assert "bentoml" not in text and "litserve" not in text, name
