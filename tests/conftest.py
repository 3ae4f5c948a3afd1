"""Fixtures shared by the integration tests: one real control plane per test run.

The control plane is etcd + kube-apiserver + kube-controller-manager built from pinned
upstream releases (`make tools`), with our CRDs and the upstream KubeVirt, CDI,
VolumeSnapshot, Multus and Cluster API schemas installed. Without the binaries the
integration tests skip, saying so.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from operators.common.kinds import VERSION
from operators.devcluster.controlplane import DEFAULT_BIN_DIR, ControlPlane, missing_binaries
from operators.devcluster.install import install_everything, remove_admission
from operators.devcluster.objectstore import ObjectStoreServer
from operators.devcluster.simulator import Delays, Simulator
from operators.identity.api import PROJECT
from tests.support import Operator, eventually, fresh_namespace


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    missing = missing_binaries(DEFAULT_BIN_DIR)
    if missing:
        pytest.skip(f"{', '.join(missing)} missing in {DEFAULT_BIN_DIR}: run `make tools`")
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"))
    plane.start(bootstrap=install_everything)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with control_plane.api_client() as api_client:
        yield api_client


@pytest.fixture(scope="session")
def simulator(api: client.ApiClient) -> Iterator[Simulator]:
    """The status simulator (KubeVirt, CDI, storage), with short delays, for the session."""
    delays = Delays(
        vm_start=0.1, import_step=0.1, import_steps=4, bind=0.1, resize=0.1, snapshot=0.1
    )
    with Simulator(api, delays) as running:
        yield running


@pytest.fixture(scope="session")
def object_store(
    api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ObjectStoreServer]:
    """A real S3 object store (versitygw) on loopback, configured for the objectstorage
    service, for the session."""
    server = ObjectStoreServer(tmp_path_factory.mktemp("objectstore"))
    if not server.binary.exists():
        pytest.skip(f"{server.binary} missing: run `make tools`")
    with server:
        server.install(api)
        yield server


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace per test."""
    with fresh_namespace(api) as name:
        yield name


@pytest.fixture(scope="session")
def run_operator(
    control_plane: ControlPlane, api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Operator]]:
    """Start operators (real processes) for the rest of the session: `run_operator("identity")`.

    Starting the same services twice returns the running one. At the end they are stopped
    and the admission webhook they registered is removed, so no later run finds a webhook
    that nobody serves.
    """
    running: dict[tuple[str, ...], Operator] = {}

    def start(*services: str) -> Operator:
        if services not in running:
            operator = Operator(
                control_plane.kubeconfig, tmp_path_factory.mktemp("operator"), services
            )
            operator.start()
            running[services] = operator
        return running[services]

    yield start
    for operator in running.values():
        operator.stop()
    remove_admission(api)


@pytest.fixture
def project(api: client.ApiClient) -> Iterator[Callable[[], str]]:
    """Make Projects (needs the identity operator running) and wait until they are Ready;
    their namespaces and everything in them go at the end (Cascade)."""
    custom = client.CustomObjectsApi(api)
    made: list[str] = []

    def make() -> str:
        name = f"p-{uuid.uuid4().hex[:6]}"
        body = {"apiVersion": PROJECT.api_version, "kind": "Project", "metadata": {"name": name}}
        custom.create_cluster_custom_object(
            PROJECT.group, VERSION, PROJECT.plural, {**body, "spec": {"deletionPolicy": "Cascade"}}
        )
        made.append(name)

        def ready() -> bool:
            obj = custom.get_cluster_custom_object(PROJECT.group, VERSION, PROJECT.plural, name)
            return obj.get("status", {}).get("phase") == "Ready"

        eventually(ready, f"Project {name} Ready")
        return name

    yield make
    for name in made:
        custom.delete_cluster_custom_object(PROJECT.group, VERSION, PROJECT.plural, name)
