"""The Helm chart: lint, what it renders, and an install into a real control plane whose
RBAC then shows, with `kubectl auth can-i`, that each service may do what it needs and
nothing of another service's, and that no service but two may read a Secret."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from operators.devcluster.controlplane import DEFAULT_BIN_DIR, ControlPlane, missing_binaries
from operators.devcluster.install import install_crds
from operators.service_roles import SERVICE_GROUPS

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ostack"
HELM = DEFAULT_BIN_DIR / "helm"
NAMESPACE = "ostack-system"
KUBE_VERSION = "1.33.13"
SERVICES = tuple(SERVICE_GROUPS)

pytestmark = pytest.mark.skipif(not HELM.exists(), reason=f"{HELM} missing: run `make tools`")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=check)


def render(*values: str) -> list[dict]:
    sets = [arg for value in values for arg in ("--set", value)]
    out = helm(
        "template", "ostack", str(CHART), "-n", NAMESPACE, "--kube-version", KUBE_VERSION, *sets
    )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    return render()


def of_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_lint() -> None:
    result = helm("lint", str(CHART), "--kube-version", KUBE_VERSION, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_runs_as_its_own_service_account(rendered: list[dict]) -> None:
    deployments = of_kind(rendered, "Deployment")
    assert set(deployments) == {f"ostack-{s}" for s in SERVICES}
    accounts = {d["spec"]["template"]["spec"]["serviceAccountName"] for d in deployments.values()}
    assert accounts == set(deployments)
    bindings = of_kind(rendered, "ClusterRoleBinding")
    for name in deployments:
        binding = bindings[name]
        assert binding["roleRef"]["name"] == name
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}
        ]


def test_no_role_has_a_wildcard(rendered: list[dict]) -> None:
    roles = [o for o in rendered if o["kind"] in ("ClusterRole", "Role")]
    assert len(roles) == len(SERVICES) + 4  # the services' and the four tenant roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)


def test_pods_meet_the_restricted_pod_security_standard(rendered: list[dict]) -> None:
    for deployment in of_kind(rendered, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["readOnlyRootFilesystem"] is True
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["resources"]["limits"]


def test_only_identity_serves_a_webhook_behind_a_service(rendered: list[dict]) -> None:
    deployments = of_kind(rendered, "Deployment")
    for name, deployment in deployments.items():
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        webhook = [a for a in args if a.startswith("--webhook-service")]
        assert webhook == (
            [f"--webhook-service={NAMESPACE}/ostack-webhook:443"]
            if name == "ostack-identity"
            else []
        )
        assert f"--peering={name}" in args
    secret = of_kind(rendered, "Secret")["ostack-webhook-tls"]
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}


def test_a_disabled_service_is_gone_entirely() -> None:
    objects = render("services.objectstorage.enabled=false", "metrics.serviceMonitor.enabled=true")
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert not {n for n in names if "objectstorage" in n[1]}
    assert len(of_kind(objects, "ServiceMonitor")) == len(SERVICES) - 1


@pytest.mark.parametrize(
    "value",
    ["services.compute.replicas=-1", "services.dns.enabled=true", "webhook.port=80", "image.tag="],
)
def test_values_are_validated_by_the_schema(value: str) -> None:
    result = helm(
        "template",
        "ostack",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "--set",
        value,
        check=False,
    )
    assert result.returncode != 0 and "values don't meet the specifications" in result.stderr


# --- installed into a real control plane ----------------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A control plane of its own with only the upstream CRDs, and the chart installed by
    Helm: everything else (ostack's CRDs, roles, flavors) comes from the chart."""
    if missing_binaries(DEFAULT_BIN_DIR):
        pytest.skip("control-plane binaries missing: run `make tools`")
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    from operators.devcluster.thirdparty import upstream_crds

    plane = ControlPlane(tmp_path_factory.mktemp("chartplane"))
    plane.start(bootstrap=lambda api: install_crds(api, upstream_crds()))
    try:
        result = helm(
            "install",
            "ostack",
            str(CHART),
            "-n",
            NAMESPACE,
            "--create-namespace",
            "--kubeconfig",
            str(plane.kubeconfig),
            check=False,
        )
        assert result.returncode == 0, result.stderr
        yield plane.kubeconfig
    finally:
        plane.stop()


def can(kubeconfig: Path, service: str, verb: str, resource: str, namespace: str = "demo") -> bool:
    """`resource` as kubectl takes it, or `plural.group:subresource`."""
    user = f"system:serviceaccount:{NAMESPACE}:ostack-{service}"
    if ":" in resource:
        # kubectl resolves resources through discovery, and KubeVirt's subresource API is
        # not served here: ask the apiserver's SubjectAccessReview directly, as kubectl does.
        plural_group, _, subresource = resource.partition(":")
        plural, _, group = plural_group.partition(".")
        attributes = {
            "verb": verb,
            "group": group,
            "resource": plural,
            "subresource": subresource,
            "namespace": namespace,
        }
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": GROUPS, "resourceAttributes": attributes},
        }
        with config.new_client_from_config(config_file=str(kubeconfig)) as api:
            answer = client.AuthorizationV1Api(api).create_subject_access_review(review)
        return bool(answer.status.allowed)
    command = ["kubectl", "--kubeconfig", str(kubeconfig), "auth", "can-i", verb, resource]
    result = subprocess.run(
        [*command, "-n", namespace, f"--as={user}"], capture_output=True, text=True
    )
    return result.stdout.strip() == "yes"


GROUPS = ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}", "system:authenticated"]
NEEDS = {
    "identity": [
        ("create", "namespaces"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
        ("bind", "clusterroles.rbac.authorization.k8s.io/ostack-member"),
        ("patch", "projects.identity.ostack.dev/status"),
        ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
    ],
    "compute": [
        ("create", "virtualmachines.kubevirt.io"),
        ("create", "secrets"),
        ("create", "ipallocations.network.ostack.dev"),
        ("update", "virtualmachineinstances.subresources.kubevirt.io:pause"),
    ],
    "image": [
        ("create", "datavolumes.cdi.kubevirt.io"),
        ("create", "datasources.cdi.kubevirt.io"),
        ("create", "roles.rbac.authorization.k8s.io"),
    ],
    "blockstorage": [
        ("create", "persistentvolumeclaims"),
        ("create", "volumesnapshots.snapshot.storage.k8s.io"),
        ("patch", "snapshots.blockstorage.ostack.dev/status"),
    ],
    "network": [
        ("create", "network-attachment-definitions.k8s.cni.cncf.io"),
        ("create", "networkpolicies.networking.k8s.io"),
        ("delete", "ipallocations.network.ostack.dev"),
    ],
    "objectstorage": [
        ("create", "secrets"),
        ("patch", "buckets.objectstorage.ostack.dev/status"),
    ],
    "containerinfra": [
        ("create", "clusters.cluster.x-k8s.io"),
        ("create", "kubeadmcontrolplanes.controlplane.cluster.x-k8s.io"),
        ("create", "kubevirtmachinetemplates.infrastructure.cluster.x-k8s.io"),
    ],
}
PRIMARY = {
    "identity": "projects.identity.ostack.dev",
    "compute": "instances.compute.ostack.dev",
    "image": "images.image.ostack.dev",
    "blockstorage": "volumes.blockstorage.ostack.dev",
    "network": "networks.network.ostack.dev",
    "objectstorage": "buckets.objectstorage.ostack.dev",
    "containerinfra": "clusters.containerinfra.ostack.dev",
}
READS_SECRETS = {"compute", "objectstorage"}


@pytest.mark.integration
@pytest.mark.parametrize("service", SERVICES)
def test_each_service_may_do_what_it_needs(installed: Path, service: str) -> None:
    for verb, resource in NEEDS[service]:
        assert can(installed, service, verb, resource), f"{service} cannot {verb} {resource}"
    assert can(installed, service, "patch", PRIMARY[service])


@pytest.mark.integration
@pytest.mark.parametrize("service", SERVICES)
def test_each_service_touches_no_other_services_kinds_and_no_secrets(
    installed: Path, service: str
) -> None:
    for other, resource in PRIMARY.items():
        if other != service:
            for verb in ("create", "delete", "update"):
                assert not can(installed, service, verb, resource), (
                    f"{service} may {verb} {resource}"
                )
    assert not can(installed, service, "list", "secrets")
    assert can(installed, service, "get", "secrets") == (service in READS_SECRETS)
    assert not can(installed, service, "create", "pods")
    assert not can(installed, service, "escalate", "clusterroles.rbac.authorization.k8s.io")
