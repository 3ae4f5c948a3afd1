"""A tenant's day on a real cluster: Image -> Volume -> Instance that boots with an address,
stop/start, attach/detach, network isolation by actual traffic, a bucket with ACLs, and a
Kubernetes cluster. Timeouts are generous: KubeVirt runs VMs under emulation on kind."""

from __future__ import annotations

import base64
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from kubernetes import client

from operators.blockstorage.api import VOLUME
from operators.common.kinds import VERSION
from operators.compute.api import INSTANCE
from operators.containerinfra.api import CLUSTER
from operators.identity.api import PROJECT
from operators.image.api import IMAGE
from operators.network.api import SECURITY_GROUP
from operators.objectstorage.api import BUCKET
from tests.support import create_object as make
from tests.support import patch_spec as patch
from tests.support import read_object as get

CIRROS = "https://download.cirros-cloud.net/0.6.2/cirros-0.6.2-x86_64-disk.img"
BOOT = 900.0
Obj = dict[str, Any]


def eventually(probe: Callable[[], Any], what: str, timeout: float = BOOT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def tenant(cluster: client.ApiClient) -> Iterator[Callable[[], str]]:
    custom = client.CustomObjectsApi(cluster)
    made: list[str] = []

    def new() -> str:
        name = f"e2e-{uuid.uuid4().hex[:6]}"
        body = {"apiVersion": PROJECT.api_version, "kind": "Project", "metadata": {"name": name}}
        custom.create_cluster_custom_object(
            PROJECT.group, VERSION, PROJECT.plural, {**body, "spec": {"deletionPolicy": "Cascade"}}
        )
        made.append(name)
        eventually(lambda: phase(cluster, PROJECT, "", name) == "Ready", f"Project {name}", 120)
        return name

    yield new
    for name in made:
        custom.delete_cluster_custom_object(PROJECT.group, VERSION, PROJECT.plural, name)


def phase(api: client.ApiClient, kind, ns: str, name: str) -> str | None:
    if not ns:
        obj = client.CustomObjectsApi(api).get_cluster_custom_object(
            kind.group, VERSION, kind.plural, name
        )
    else:
        obj = get(api, kind.group, VERSION, kind.plural, ns, name) or {}
    return (obj.get("status") or {}).get("phase")


def addresses(api: client.ApiClient, ns: str, name: str) -> list[Obj]:
    obj = get(api, INSTANCE.group, VERSION, INSTANCE.plural, ns, name) or {}
    return (obj.get("status") or {}).get("addresses") or []


def booted(api: client.ApiClient, ns: str, name: str, **spec: Any) -> str:
    make(api, INSTANCE, ns, name, {"flavor": "m1.tiny", "image": {"name": "cirros"}, **spec})
    eventually(lambda: phase(api, INSTANCE, ns, name) == "ACTIVE", f"Instance {name} ACTIVE")
    return eventually(
        lambda: next((a["ip"] for a in addresses(api, ns, name) if a.get("ip")), None),
        f"an address of {name}",
    )


def an_image(api: client.ApiClient, ns: str) -> None:
    make(api, IMAGE, ns, "cirros", {"source": {"http": {"url": CIRROS}}, "diskFormat": "qcow2"})
    eventually(lambda: phase(api, IMAGE, ns, "cirros") == "active", "the Image active")


def test_image_volume_instance_power_and_attachments(cluster: client.ApiClient, tenant) -> None:
    ns = tenant()
    an_image(cluster, ns)
    make(cluster, VOLUME, ns, "data", {"size": "1Gi"})
    eventually(lambda: phase(cluster, VOLUME, ns, "data") == "available", "the Volume")
    booted(cluster, ns, "vm")
    patch(cluster, INSTANCE, ns, "vm", {"powerState": "Stopped"})
    eventually(lambda: phase(cluster, INSTANCE, ns, "vm") == "SHUTOFF", "SHUTOFF")
    patch(cluster, INSTANCE, ns, "vm", {"powerState": "Running"})
    eventually(lambda: phase(cluster, INSTANCE, ns, "vm") == "ACTIVE", "ACTIVE again")
    patch(cluster, INSTANCE, ns, "vm", {"volumes": [{"name": "data"}]})
    eventually(lambda: phase(cluster, VOLUME, ns, "data") == "in-use", "attached")
    patch(cluster, INSTANCE, ns, "vm", {"volumes": []})
    eventually(lambda: phase(cluster, VOLUME, ns, "data") == "available", "detached")


def _probe(api: client.ApiClient, ns: str, name: str, target: str, labels: dict[str, str]) -> bool:
    """Whether a pod with `labels` in `ns` can open TCP port 22 (cirros' sshd) on `target`."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "probe",
                    "image": "busybox:1.37",
                    "command": ["nc", "-z", "-w", "5", target, "22"],
                }
            ],
        },
    }
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, pod)
    done = eventually(
        lambda: (
            core.read_namespaced_pod(name, ns).status.phase in ("Succeeded", "Failed")
            and core.read_namespaced_pod(name, ns)
        ),
        f"probe {name}",
        180,
    )
    return done.status.phase == "Succeeded"


def test_network_isolation_by_traffic(cluster: client.ApiClient, tenant) -> None:
    """The default group lets members in and nobody else; a group rule opens a port."""
    mine, other = tenant(), tenant()
    an_image(cluster, mine)
    target = booted(cluster, mine, "server")
    member = {"securitygroup.ostack.dev/default": "", "ostack.dev/instance": "probe"}
    assert _probe(cluster, mine, "as-member", target, member)
    assert not _probe(cluster, other, "from-elsewhere", target, {})
    make(
        cluster,
        SECURITY_GROUP,
        mine,
        "ssh",
        {
            "rules": [
                {
                    "direction": "ingress",
                    "protocol": "tcp",
                    "portRangeMin": 22,
                    "remoteCIDR": "0.0.0.0/0",
                }
            ]
        },
    )
    patch(cluster, INSTANCE, mine, "server", {"securityGroups": ["default", "ssh"]})
    eventually(
        lambda: _probe(cluster, other, f"again-{uuid.uuid4().hex[:4]}", target, {}),
        "ssh open from elsewhere",
        300,
    )


def _port_forward(service: str, namespace: str, port: int) -> tuple[subprocess.Popen, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    process = subprocess.Popen(
        ["kubectl", "-n", namespace, "port-forward", f"svc/{service}", f"{local}:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(3)
    return process, local


def _s3(api: client.ApiClient, ns: str, endpoint: str):
    secret = client.CoreV1Api(api).read_namespaced_secret("object-store-credentials", ns)
    data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=data["AWS_REGION"],
        aws_access_key_id=data["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=data["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def test_bucket_put_get_with_acls(cluster: client.ApiClient, tenant) -> None:
    owner, reader, stranger = tenant(), tenant(), tenant()
    for ns in (reader, stranger):
        make(cluster, BUCKET, ns, "own", {})
        eventually(lambda ns=ns: phase(cluster, BUCKET, ns, "own") == "Ready", "a bucket", 120)
    make(cluster, BUCKET, owner, "shared", {"acl": {"read": [f"{reader}:*"]}})
    eventually(lambda: phase(cluster, BUCKET, owner, "shared") == "Ready", "the bucket", 120)
    forward, port = _port_forward("versitygw", "ostack-system", 7070)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        name = f"{owner}-shared"
        _s3(cluster, owner, endpoint).put_object(Bucket=name, Key="k", Body=b"v")
        assert (
            _s3(cluster, reader, endpoint).get_object(Bucket=name, Key="k")["Body"].read() == b"v"
        )
        with pytest.raises(ClientError):
            _s3(cluster, stranger, endpoint).get_object(Bucket=name, Key="k")
        with pytest.raises(ClientError):
            _s3(cluster, reader, endpoint).put_object(Bucket=name, Key="x", Body=b"x")
    finally:
        forward.terminate()


def test_a_cluster_is_created(cluster: client.ApiClient, tenant) -> None:
    ns = tenant()
    an_image(cluster, ns)
    make(
        cluster,
        CLUSTER,
        ns,
        "k8s",
        {
            "kubernetesVersion": "v1.33.1",
            "image": {"name": "cirros"},
            "controlPlane": {"replicas": 1, "flavor": "m1.small"},
            "nodeGroups": [{"name": "workers", "replicas": 1, "flavor": "m1.small"}],
        },
    )
    eventually(
        lambda: phase(cluster, CLUSTER, ns, "k8s") in ("Provisioning", "Ready"), "provisioning"
    )
    capi = get(cluster, "cluster.x-k8s.io", "v1beta2", "clusters", ns, "k8s")
    assert capi is not None and capi["spec"]["infrastructureRef"]["kind"] == "KubevirtCluster"
