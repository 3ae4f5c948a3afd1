"""The end-to-end suite: the same scenarios as the integration tests, against a real
cluster with KubeVirt, CDI, a CSI driver, Multus, Cluster API and an S3 store
(`make kind-up`), run by `make e2e` against whatever KUBECONFIG points to.

It runs only when asked (`OSTACK_E2E=1`, which `make e2e` sets) and where a Docker engine
answers, so `make test` on a machine without one skips it, saying why.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from kubernetes import client, config


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = None
    if os.environ.get("OSTACK_E2E") != "1":
        reason = "end-to-end tests run with `make e2e` (OSTACK_E2E=1) against a kind cluster"
    elif not _docker_answers():
        reason = "no Docker engine here: run `make kind-up && make e2e` where Docker exists"
    if reason:
        for item in items:
            if "/e2e/" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def cluster() -> Iterator[client.ApiClient]:
    config.load_kube_config()
    with client.ApiClient() as api:
        yield api
