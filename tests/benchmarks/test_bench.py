"""`make bench` in its quick mode: the script starts every server, drives every row and writes its
table and JSON. It asserts the shape of the results, never a speed."""
import json
import subprocess
import sys

from benchmarks.bench import BALANCED, spread
from tests.conftest import ROOT


def test_quick_bench_measures_every_row(tmp_path):
    """Every row got successful requests; the JSON, the markdown table and stdout agree."""
    output = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "benchmarks/bench.py", "--quick", "--output", str(output)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]

    results = json.loads(output.read_text())
    names = [row["name"] for row in results["rows"]]
    for expected in ("Flask ceiling, 28x28 PNG", "original approach, 28x28 PNG", "/predict, 28x28 PNG",
                     "Flask ceiling, 280x280 canvas PNG", "original approach, 280x280 canvas PNG",
                     "/predict, 280x280 canvas PNG", "/predict JSON pixels, 256 digits"):
        assert expected in names
    for row in results["rows"]:
        assert row["ok"] > 0, row
        assert row["requests_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"], row
        if row["digits_per_request"] > 1:
            assert row["digits_per_s"] > 0, row
        else:
            assert row["vs_ceiling"] > 0 and row["vs_original"] > 0, row
    for name in ("service", "original", "ceiling"):
        server = results["servers"][name]
        assert server["ready_s"] > 0
        assert len(server["worker_rss_mb"]) == results["settings"]["workers"]
        assert all(mb > 0 for mb in server["worker_rss_mb"])

    markdown = output.with_suffix(".md").read_text()
    assert markdown.startswith("| Scenario |")
    assert all(f"| {name} |" in markdown for name in names)
    assert markdown in run.stdout


def test_spread_tells_an_idle_worker_from_shared_load():
    """What decides whether a wrk run is run again: CPU ticks per worker pid, before and after."""
    assert spread({1: 100, 2: 200}, {1: 300, 2: 400}) == 1.0  # both did 200 ticks
    assert spread({1: 0, 2: 0}, {1: 390, 2: 10}) == 0.05  # one worker took the connections
    assert spread({1: 0, 2: 0}, {1: 390, 2: 10}) < BALANCED <= spread({1: 0, 2: 0}, {1: 250, 2: 150})
    assert spread({1: 0, 2: 0}, {1: 400, 3: 20}) == 1.0  # worker 2 was replaced: cannot tell, so kept
    assert spread({1: 0}, {1: 400}) == 1.0  # a single worker is always even
