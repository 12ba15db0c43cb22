"""The monitoring profile: Prometheus finds every replica, Grafana gets Prometheus and the dashboard,
and every metric the dashboard charts is one the app exports."""
import json
import re

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import DASHBOARD, ROOT, image_bytes, queries

DEPLOY = ROOT / "dockerFlaskService"


def test_prometheus_scrapes_every_replica_directly():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    [discovery] = job["dns_sd_configs"]
    assert (discovery["names"], discovery["type"], discovery["port"]) == (["app"], "A", 5000)
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_grafana_provisioning_matches_the_compose_mounts():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    mounts = dict(volume.split(":")[:2] for volume in volumes if volume.startswith("./"))
    [provider] = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/digits.yml").read_text())["providers"]
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    [source] = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    dashboard = json.loads(DASHBOARD.read_text())
    used = {json.dumps(panel["datasource"], sort_keys=True) for panel in dashboard["panels"]}
    assert used == {json.dumps({"type": "prometheus", "uid": source["uid"]}, sort_keys=True)}
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_dashboard_charts_only_metrics_the_app_exports(client, mnist):
    """After a prediction and an error, /metrics has every series name the dashboard's queries use
    (`up` comes from Prometheus itself)."""
    assert client.post("/predict", data=image_bytes(mnist["x_test"][0]), content_type="image/png").status_code == 200
    assert client.post("/predict", data=b"not an image", content_type="image/png").status_code == 400
    exported = {sample.name for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
                for sample in family.samples}
    charted = {name for expr in queries(json.loads(DASHBOARD.read_text()))
               for name in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]", expr)}
    assert charted - {"up"} <= exported, charted - exported
    assert {"digit_predictions_total", "api_errors_total", "http_request_duration_seconds_bucket"} <= charted
