"""The local control plane runs real controllers: GC, namespaces, quota, RBAC, tokens.

Each test proves one component works as in a real cluster, so operator tests built on this
control plane can rely on it. This module starts its own control plane (without CRDs) rather
than the session's in tests/conftest.py: it stops control planes and drives the CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from operators.devcluster.controlplane import (
    COMPONENTS,
    DEFAULT_BIN_DIR,
    REPO_ROOT,
    AlreadyRunning,
    BinaryNotFound,
    ControlPlane,
    missing_binaries,
    port_is_free,
)
from tests.support import acting_as, eventually, refused

# --- fixtures --------------------------------------------------------------------------------


def skip_without_binaries(bin_dir: Path = DEFAULT_BIN_DIR) -> None:
    missing = missing_binaries(bin_dir)
    if missing:
        pytest.skip(f"{', '.join(missing)} missing in {bin_dir}: run `make tools`")


def running_control_plane(workdir: Path, bin_dir: Path = DEFAULT_BIN_DIR) -> Iterator[ControlPlane]:
    """Start a control plane in `workdir`, yield it, stop it; skip if the binaries are absent."""
    skip_without_binaries(bin_dir)
    control_plane = ControlPlane(workdir, bin_dir)
    control_plane.start()
    try:
        yield control_plane
    finally:
        control_plane.stop()


# control_plane and api shadow tests/conftest.py's on purpose: this module's own plane
# (conftest's `namespace` then uses it).
@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    yield from running_control_plane(tmp_path_factory.mktemp("controlplane"))


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with control_plane.api_client() as api_client:
        yield api_client


# --- helpers ---------------------------------------------------------------------------------


def is_gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def config_map(name: str, owner: client.V1ConfigMap | None = None) -> client.V1ConfigMap:
    owners = None
    if owner is not None:
        owners = [
            client.V1OwnerReference(
                api_version="v1", kind="ConfigMap", name=owner.metadata.name, uid=owner.metadata.uid
            )
        ]
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, owner_references=owners), data={"k": "v"}
    )


def process_running(pid: int) -> bool:
    """Whether `pid` is alive; a zombie (exited, not yet reaped by init) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


# --- the control plane works ------------------------------------------------------------------


@pytest.mark.integration
def test_apiserver_is_ready_and_verified_by_the_kubeconfig_ca(
    control_plane: ControlPlane, api: client.ApiClient
) -> None:
    assert control_plane.ready()
    assert control_plane.server.startswith("https://127.0.0.1:")
    # The kubeconfig carries our CA and verification is on, so this call proves TLS checks out.
    assert api.configuration.verify_ssl
    assert client.VersionApi(api).get_code().git_version.startswith("v1.33.")


@pytest.mark.integration
def test_garbage_collector_deletes_dependents(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(namespace, config_map("owner"))
    core.create_namespaced_config_map(namespace, config_map("child", owner=owner))

    core.delete_namespaced_config_map("owner", namespace)

    eventually(
        lambda: is_gone(lambda: core.read_namespaced_config_map("child", namespace)),
        "the garbage collector to delete the owned ConfigMap",
    )


@pytest.mark.integration
def test_namespace_deletion_completes(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    name = f"doomed-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(name, config_map("content"))

    core.delete_namespace(name)

    # Only the namespace controller empties the namespace and removes its finalizer.
    eventually(lambda: is_gone(lambda: core.read_namespace(name)), f"namespace {name} to go")


@pytest.mark.integration
def test_rbac_forbids_a_user_without_a_binding(api: client.ApiClient, namespace: str) -> None:
    client.CoreV1Api(api).list_namespaced_pod(namespace)  # admin may

    with acting_as(api, "alice") as alice_api:
        alice = client.CoreV1Api(alice_api)
        refused(lambda: alice.list_namespaced_pod(namespace))

        # ...and a binding is what changes that, so the 403 came from RBAC.
        client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="alice-view"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"
                ),
                subjects=[
                    client.RbacV1Subject(
                        api_group="rbac.authorization.k8s.io", kind="User", name="alice"
                    )
                ],
            ),
        )
        eventually(lambda: _can_list_pods(alice, namespace), "alice's RoleBinding to apply")


def _can_list_pods(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.list_namespaced_pod(namespace)
    except ApiException as error:
        if error.status == 403:
            return False
        raise
    return True


@pytest.mark.integration
def test_resource_quota_usage_is_counted(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_resource_quota(
        namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="quota"),
            spec=client.V1ResourceQuotaSpec(hard={"configmaps": "10", "pods": "5"}),
        ),
    )
    core.create_namespaced_config_map(namespace, config_map("counted"))

    def used() -> dict[str, str] | None:
        status = core.read_namespaced_resource_quota("quota", namespace).status
        return status.used if status is not None else None

    # kube-root-ca.crt (root-ca-cert-publisher) is counted too, hence >= 1, not == 1.
    usage = eventually(
        lambda: (u := used()) and int(u.get("configmaps", "0")) >= 1 and u,
        "the resourcequota controller to fill status.used",
    )
    assert usage["pods"] == "0"


@pytest.mark.integration
def test_service_account_tokens_authenticate(
    control_plane: ControlPlane, api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    eventually(
        lambda: not is_gone(lambda: core.read_namespaced_service_account("default", namespace)),
        "the serviceaccount controller to create the default ServiceAccount",
    )

    request = core.create_namespaced_service_account_token(
        "default",
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    )
    assert _user_of(control_plane, request.status.token) == (
        f"system:serviceaccount:{namespace}:default"
    )

    # A legacy token Secret is filled in by kube-controller-manager's token controller.
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="legacy-token",
                annotations={"kubernetes.io/service-account.name": "default"},
            ),
            type="kubernetes.io/service-account-token",
        ),
    )
    data = eventually(
        lambda: core.read_namespaced_secret("legacy-token", namespace).data,
        "the token controller to fill the legacy token Secret",
    )
    assert {"token", "ca.crt", "namespace"} <= data.keys()


def _user_of(control_plane: ControlPlane, token: str) -> str:
    configuration = client.Configuration(
        host=control_plane.server,
        ssl_ca_cert=str(control_plane.ca_file),
        api_key={"BearerToken": token},
        api_key_prefix={"BearerToken": "Bearer"},
    )
    with client.ApiClient(configuration) as token_api:
        review = client.AuthenticationV1Api(token_api).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
    return str(review.status.user_info.username)


# --- lifecycle ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_stop_leaves_no_process_and_no_port(tmp_path: Path) -> None:
    skip_without_binaries()
    control_plane = ControlPlane(tmp_path / "work")
    control_plane.start()
    try:
        pids = control_plane.running()
        ports = control_plane.ports.all()
        assert set(pids) == set(COMPONENTS)
        with pytest.raises(AlreadyRunning):
            ControlPlane(tmp_path / "work").start()
    finally:
        control_plane.stop()

    assert not [pid for pid in pids.values() if process_running(pid)]
    assert all(port_is_free(port) for port in ports)
    assert not list((tmp_path / "work" / "run").glob("*.pid"))


@pytest.mark.integration
def test_cli_up_detaches_and_down_stops_it(tmp_path: Path) -> None:
    skip_without_binaries()
    workdir = tmp_path / "work"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "operators.devcluster", *args, "--workdir", str(workdir)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    up = cli("up")
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip() == f"export KUBECONFIG={workdir / 'kubeconfig'}"
        # The CLI has exited: the control plane must still be there.
        status = cli("status")
        assert status.returncode == 0, status.stdout + status.stderr
        control_plane = ControlPlane(workdir)
        pids = {**control_plane.running(), "supervisor": control_plane.supervisor_pid()}
        ports = control_plane.ports.all()
        assert control_plane.ready()
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr

    assert not [pid for pid in pids.values() if pid is not None and process_running(pid)]
    assert all(port_is_free(port) for port in ports)
    assert cli("status").returncode != 0


def test_missing_binary_is_a_one_line_error(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    with pytest.raises(BinaryNotFound) as error:
        ControlPlane(tmp_path / "work", empty).start()
    message = str(error.value)
    assert "\n" not in message
    assert "kube-apiserver" in message
    assert "run `make tools`" in message
    assert not os.path.exists(tmp_path / "work")
