"""Worker recycling under the container's memory limit: in docker-compose.yml and k8s/deployment.yaml,
a worker is recycled for memory growth (GUNICORN_MAX_GROWTH_MB) while the container still has room,
so the kernel's OOM killer never acts first."""
import re
import subprocess
import sys

import yaml

from tests.helpers import COMPOSE, ROOT, compose_config

DEPLOYMENT = ROOT / "dockerFlaskService" / "k8s" / "deployment.yaml"
# gunicorn and its one worker when serving: tests/dockerFlaskService/containers/test_image.py
# measures about 150 MiB (peak RSS of both); rounded up.
BASELINE_MIB = 160
# Left over after baseline, recycling threshold and a full /tmp: one request's own peak, and what
# the worker grows in the second between two recycling checks (flaskService/worker.py).
HEADROOM_MIB = 48


def mebibytes(quantity):
    """A memory figure as compose (bytes, or `64m`) or Kubernetes (`384Mi`) writes it, in MiB."""
    number, unit = re.fullmatch(r"(\d+)([a-zA-Z]*)", str(quantity)).groups()
    return int(number) * {"": 2**-20, "k": 2**-10, "m": 1, "Mi": 1, "g": 2**10, "Gi": 2**10}[unit]


def compose_budget():
    app = compose_config(COMPOSE)["services"]["app"]
    [tmp] = [re.search(r"size=(\w+)", t).group(1) for t in app["tmpfs"] if t.startswith("/tmp:")]
    return {"limit": mebibytes(app["deploy"]["resources"]["limits"]["memory"]),
            "growth": int(app["environment"]["GUNICORN_MAX_GROWTH_MB"]), "tmp": mebibytes(tmp)}


def k8s_budget():
    pod = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    [tmp] = [volume for volume in pod["volumes"] if volume["name"] == "tmp"]
    assert tmp["emptyDir"]["medium"] == "Memory"  # counted in the container's memory limit
    return {"limit": mebibytes(container["resources"]["limits"]["memory"]),
            "growth": int(env["GUNICORN_MAX_GROWTH_MB"]), "tmp": mebibytes(tmp["emptyDir"]["sizeLimit"])}


def test_recycling_triggers_before_the_memory_limit():
    """Baseline + recycling threshold + a full memory-backed /tmp + headroom fit the limit, in both
    deployments, with the same figures."""
    budgets = {"compose": compose_budget(), "k8s": k8s_budget()}
    for name, budget in budgets.items():
        used = BASELINE_MIB + budget["growth"] + budget["tmp"]
        print(f"\n{name}: {BASELINE_MIB} + {budget['growth']} + {budget['tmp']} = {used:.0f} MiB "
              f"of {budget['limit']:.0f}, {budget['limit'] - used:.0f} MiB to spare")
        assert budget["growth"] > 0, name  # 0 turns recycling for memory off
        assert used + HEADROOM_MIB <= budget["limit"], name
    assert budgets["compose"] == budgets["k8s"]


def test_gunicorn_takes_the_threshold_from_the_environment():
    """The setting the deployments write is the one gunicorn.conf.py gives the worker."""
    script = ("import runpy; print(runpy.run_path('flaskService/gunicorn.conf.py')"
              "['BalancedWorker'].max_growth_mb)")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "GUNICORN_MAX_GROWTH_MB": "96"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "96"
