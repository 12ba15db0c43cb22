"""dockerFlaskService/k8s: every manifest valid against the Kubernetes API schemas (the
kubernetes-validate package ships them), and the kustomization names them all."""
import re

import kubernetes_validate
import pytest
import yaml

from flaskService.config import SETTINGS
from tests.helpers import ROOT

K8S = ROOT / "dockerFlaskService" / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
GUNICORN_TIMEOUT = 30  # flaskService/gunicorn.conf.py `timeout`
# The oldest Kubernetes still supported upstream when this was written, and the newest the schemas know.
VERSIONS = ("1.32.0", kubernetes_validate.latest_version())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates(manifest, version):
    for document in yaml.safe_load_all(manifest.read_text()):
        kubernetes_validate.validate(document, version, strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]


def resources():
    return {doc["kind"]: doc for p in MANIFESTS for doc in yaml.safe_load_all(p.read_text())}


def test_deployment_probes_security_and_drain():
    pod = resources()["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
    assert set(container["resources"]) == {"requests", "limits"}
    # preStop sleep + gunicorn's graceful_timeout (20 s) fit in the grace period
    assert pod["terminationGracePeriodSeconds"] > int(container["lifecycle"]["preStop"]["exec"]["command"][1]) + 20


def test_service_and_autoscaler_point_at_the_deployment():
    found = resources()
    deployment = found["Deployment"]
    assert found["Service"]["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    target = found["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    [rule] = found["Ingress"]["spec"]["rules"]
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == found["Service"]["metadata"]["name"]


def test_deployment_resources_match_compose():
    """One measured figure for both: tests/dockerFlaskService/containers checks the image's peak
    memory against it."""
    from tests.helpers import COMPOSE, compose_config

    container = resources()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    app = compose_config(COMPOSE)["services"]["app"]["deploy"]["resources"]
    mebibytes = {"limits": app["limits"]["memory"], "requests": app["reservations"]["memory"]}
    for kind, compose_bytes in mebibytes.items():
        assert container["resources"][kind]["memory"] == f"{int(compose_bytes) // 2**20}Mi", kind


def ingress_serves(path):
    """Whether the Ingress sends `path` to the service: an Exact path is the path itself; a Prefix
    path matches element by element (`/v2` matches `/v2/models`, not `/v2x`), as Kubernetes says."""
    [rule] = resources()["Ingress"]["spec"]["rules"]
    for entry in rule["http"]["paths"]:
        if entry["pathType"] == "Exact" and path == entry["path"]:
            return True
        prefix = entry["path"].rstrip("/")
        if entry["pathType"] == "Prefix" and (path == prefix or path.startswith(prefix + "/")):
            return True
    return False


def test_ingress_exposes_every_public_route_but_not_metrics(app):
    """Every route of the app is reachable through the Ingress, except /metrics, which Prometheus reads
    from each pod (the pod annotations name its port) and which stays inside the cluster."""
    routes = {re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"example-\1", rule.rule) for rule in app.url_map.iter_rules()}
    assert "/metrics" in routes
    assert not ingress_serves("/metrics")
    assert [route for route in sorted(routes - {"/metrics"}) if not ingress_serves(route)] == []
    annotations = resources()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/path"], annotations["prometheus.io/port"]) == ("/metrics", "5000")


def test_ingress_timeouts_and_retries_match_the_compose_nginx():
    """The annotations carry the compose nginx's timeouts and retry rule: no `non_idempotent`, so a
    POST that reached a pod is never sent to another."""
    annotations = resources()["Ingress"]["metadata"]["annotations"]
    template = (ROOT / "dockerFlaskService/nginx/templates/default.conf.template").read_text()
    directives = dict(re.findall(r"^\s*(proxy_\w+) ([^;]+);", template, re.MULTILINE))
    for name in ("proxy_connect_timeout", "proxy_send_timeout", "proxy_read_timeout", "proxy_next_upstream_timeout",
                 "proxy_next_upstream_tries", "proxy_next_upstream"):
        annotation = annotations["nginx.ingress.kubernetes.io/" + name.replace("_", "-")]
        assert annotation == directives[name].removesuffix("s"), name
    assert "non_idempotent" not in directives["proxy_next_upstream"]
    # nginx waits longer than the app's own deadline (its 503 comes first) and less than gunicorn's
    # heartbeat timeout, after which the worker is replaced.
    request_timeout = SETTINGS["REQUEST_TIMEOUT"][0] if "REQUEST_TIMEOUT" in SETTINGS else 20  # being added
    assert request_timeout < int(directives["proxy_read_timeout"].removesuffix("s")) < GUNICORN_TIMEOUT
