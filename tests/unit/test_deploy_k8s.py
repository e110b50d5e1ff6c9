"""deploy/k8s/: every manifest valid for a pinned Kubernetes version (kubernetes-validate,
offline, strict), and wired together: probes on the health server, a drain before SIGTERM,
selectors that match, an autoscaler and a disruption budget that fit the Deployment."""
from __future__ import annotations

import copy

import pytest
import yaml

from serving import __main__ as serving_cli
from serving.health import DRAIN_BOUND_S, DRAIN_POLL_TIMEOUT_S, PROBE_STOP_S, STOP_BOUND_S
from serving.properties import REPO_ROOT, Endpoints, open_management, read_properties, token_auth_enabled

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="make install (requirements/dev.txt)")

K8S = REPO_ROOT / "deploy" / "k8s"
# The Kubernetes release the manifests are checked against (kubernetes-validate ships its schemas).
KUBERNETES_VERSION = "1.33.0"
APP = {"app.kubernetes.io/name": "news-cnn"}


def manifests() -> dict[str, dict]:
    """kind -> the one manifest of that kind in deploy/k8s/."""
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in found, f"two {doc['kind']} manifests"
            found[doc["kind"]] = doc
    return found


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("kind", ["Deployment", "Service", "HorizontalPodAutoscaler",
                                  "PodDisruptionBudget", "NetworkPolicy"])
def test_manifest_is_valid_for_the_pinned_kubernetes(kind):
    kubernetes_validate.validate(manifests()[kind], KUBERNETES_VERSION, strict=True)


def test_the_validator_catches_a_broken_deployment():
    broken = copy.deepcopy(manifests()["Deployment"])
    container(broken)["readinessProbe"]["httpGet"]["port"] = ["health"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(manifests()["Deployment"])
    container(broken)["readinessProbe"]["httpGett"] = {"path": "/ready"}  # strict: unknown field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_probes_use_the_health_server_the_image_starts():
    c = container(manifests()["Deployment"])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    health = read_properties(REPO_ROOT / "deploy" / "config.properties")["health_address"]
    assert health.endswith(f":{ports['health']}")
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "health"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/live", "port": "health"}
    # A lost last worker must take the pod out within the 2 s readiness bound, or close to it,
    # yet one failed poll (a canary slow under load) must not take it out alone.
    ready = c["readinessProbe"]
    assert ready["periodSeconds"] * ready["failureThreshold"] <= 2
    assert ready["failureThreshold"] >= 2
    inference = read_properties(REPO_ROOT / "deploy" / "config.properties")["inference_address"]
    assert inference.endswith(f":{ports['inference']}")


def test_pods_drain_before_sigterm_within_the_grace_period():
    deployment = manifests()["Deployment"]
    command = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:4] == ["python", "-m", "serving", "drain"]
    notice = serving_cli.build_parser().parse_args(command[3:]).notice  # options `drain` takes
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # Phase 1, preStop: the drain, its notice included, ends within DRAIN_BOUND_S. Phase 2,
    # SIGTERM: `run` sees the drain marker, does not drain again, and stops TorchServe
    # (STOP_BOUND_S) and the health server (PROBE_STOP_S). Both fit the grace period.
    # The drain's loop may overrun its bound by its last two polls (metrics, then describe).
    assert notice < DRAIN_BOUND_S
    prestop = DRAIN_BOUND_S + 2 * DRAIN_POLL_TIMEOUT_S
    assert grace >= prestop + STOP_BOUND_S + PROBE_STOP_S
    assert container(deployment)["image"].startswith("news-cnn-serve")


def test_selectors_and_targets_fit_the_deployment():
    kinds = manifests()
    deployment = kinds["Deployment"]
    assert deployment["spec"]["selector"]["matchLabels"] == APP
    assert deployment["spec"]["template"]["metadata"]["labels"].items() >= APP.items()
    assert kinds["Service"]["spec"]["selector"] == APP
    port_names = {p["name"] for p in container(deployment)["ports"]}
    assert {p["targetPort"] for p in kinds["Service"]["spec"]["ports"]} == {"inference"} <= port_names
    target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == APP
    # The budget can always be met while the autoscaler keeps its minimum.
    budget, autoscaler = kinds["PodDisruptionBudget"]["spec"], kinds["HorizontalPodAutoscaler"]["spec"]
    assert budget["minAvailable"] < autoscaler["minReplicas"]
    assert kinds["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"] == APP
    # The autoscaler's CPU target needs CPU requests.
    assert container(deployment)["resources"]["requests"]["cpu"]


def test_without_token_auth_only_the_gateway_reaches_inference_and_nobody_management():
    c = container(manifests()["Deployment"])
    env = {e["name"]: e["value"] for e in c.get("env", [])}
    assert env.get("TS_DISABLE_TOKEN_AUTHORIZATION") == "true"
    image_config = read_properties(REPO_ROOT / "deploy" / "config.properties")
    # The env vars only count because the image's config lets TS_ variables override it.
    assert image_config["enable_envvars_config"] == "true"
    assert not token_auth_enabled(image_config, env)
    # Management on the pod's loopback: what the entry point checks before it starts.
    assert open_management(image_config, env) is None
    assert open_management(image_config, {"TS_DISABLE_TOKEN_AUTHORIZATION": "true"})  # without it
    assert Endpoints.from_file(REPO_ROOT / "deploy" / "config.properties", env).management == "http://127.0.0.1:8081"
    assert "management" not in {p["name"] for p in c["ports"]}
    allowed = [port["port"] for rule in manifests()["NetworkPolicy"]["spec"]["ingress"]
               for port in rule["ports"]]
    assert 8080 in allowed and 8081 not in allowed


def test_the_pod_sends_nothing_out():
    policy = manifests()["NetworkPolicy"]["spec"]
    assert "Egress" in policy["policyTypes"] and not policy.get("egress")


def test_the_root_filesystem_is_read_only_and_every_writable_place_is_bounded():
    deployment = manifests()["Deployment"]
    c = container(deployment)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    # TorchServe's working directory (keys, logs, its temp dir) and /tmp are the writable places.
    workdir = c["lifecycle"]["preStop"]["exec"]["command"]
    assert mounts[workdir[workdir.index("--workdir") + 1]] and mounts["/tmp"]
    for name in mounts.values():
        assert volumes[name]["emptyDir"]["sizeLimit"], name
    assert c["resources"]["limits"]["ephemeral-storage"]


def test_the_kserve_manifest_is_kept():
    assert (REPO_ROOT / "deploy" / "kserve" / "inferenceservice.yaml").is_file()
