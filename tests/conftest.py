"""Fixtures shared by the integration tests: one real control plane per test run.

The control plane is etcd + kube-apiserver + kube-controller-manager built from pinned
upstream releases (`make tools`), with our CRDs and the upstream KubeVirt, CDI,
VolumeSnapshot, Multus and Cluster API schemas installed. Without the binaries the
integration tests skip, saying so.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from operators.devcluster.controlplane import DEFAULT_BIN_DIR, ControlPlane, missing_binaries
from operators.devcluster.install import install_crds, ostack_crds
from operators.devcluster.thirdparty import upstream_crds


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    missing = missing_binaries(DEFAULT_BIN_DIR)
    if missing:
        pytest.skip(f"{', '.join(missing)} missing in {DEFAULT_BIN_DIR}: run `make tools`")
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"))
    plane.start()
    try:
        with plane.api_client() as api:
            install_crds(api, upstream_crds() + ostack_crds())
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with control_plane.api_client() as api_client:
        yield api_client


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace per test, deleted (not awaited) afterwards."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
