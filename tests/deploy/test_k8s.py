"""dockerFlaskService/k8s: every manifest valid against the Kubernetes API schemas (the
kubernetes-validate package ships them), and the kustomization names them all."""
import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

K8S = ROOT / "dockerFlaskService" / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
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
    """One measured figure for both: tests/containers checks the image's peak memory against it."""
    from tests.deploy.test_compose import COMPOSE, compose_config

    container = resources()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    app = compose_config(COMPOSE)["services"]["app"]["deploy"]["resources"]
    mebibytes = {"limits": app["limits"]["memory"], "requests": app["reservations"]["memory"]}
    for kind, compose_bytes in mebibytes.items():
        assert container["resources"][kind]["memory"] == f"{int(compose_bytes) // 2**20}Mi", kind
