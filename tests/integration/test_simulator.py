"""The status simulator against a real control plane with the upstream CRDs installed.

Each test drives one behaviour the operators rely on (a VM runs, stops, restarts, pauses, fails
to schedule; a DataVolume imports, fails, waits for its upload; a claim is provisioned, bound
by kube-controller-manager, grown, snapshotted) and waits for it with a deadline.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from operators.devcluster.simulator import (
    DRIVER,
    FAIL_SCHEDULE,
    PAUSED,
    UPLOADED,
    Delays,
    Simulator,
)
from operators.devcluster.simulator.workqueue import DelayQueue, Key
from tests.support import eventually

Obj = dict[str, Any]

KUBEVIRT = ("kubevirt.io", "v1")
CDI = ("cdi.kubevirt.io", "v1beta1")
SNAPSHOTS = ("snapshot.storage.k8s.io", "v1")


# --- helpers ---------------------------------------------------------------------------------


class Cluster:
    """Terse access to the objects of one namespace, as dicts."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.api = api

    def get(self, group_version: tuple[str, str], plural: str, name: str) -> Obj | None:
        try:
            return self.custom.get_namespaced_custom_object(*group_version, self.ns, plural, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def create(self, group_version: tuple[str, str], plural: str, body: Obj) -> Obj:
        return self.custom.create_namespaced_custom_object(*group_version, self.ns, plural, body)

    def patch(self, group_version: tuple[str, str], plural: str, name: str, body: Obj) -> Obj:
        return self.custom.patch_namespaced_custom_object(
            *group_version,
            self.ns,
            plural,
            name,
            body,
            _content_type="application/merge-patch+json",
        )

    def vm(self, name: str) -> Obj | None:
        return self.get(KUBEVIRT, "virtualmachines", name)

    def vmi(self, name: str) -> Obj | None:
        return self.get(KUBEVIRT, "virtualmachineinstances", name)

    def dv(self, name: str) -> Obj | None:
        return self.get(CDI, "datavolumes", name)

    def pvc(self, name: str) -> Obj | None:
        try:
            pvc = self.core.read_namespaced_persistent_volume_claim(name, self.ns)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return self.api.sanitize_for_serialization(pvc)

    def pv(self, name: str) -> Obj | None:
        try:
            pv = self.core.read_persistent_volume(name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return self.api.sanitize_for_serialization(pv)

    def annotate(
        self, group_version: tuple[str, str], plural: str, name: str, key: str, value: str | None
    ) -> None:
        self.patch(group_version, plural, name, {"metadata": {"annotations": {key: value}}})


@pytest.fixture
def cluster(api: client.ApiClient, namespace: str, simulator: Simulator) -> Cluster:
    """The test's namespace, with the session's simulator running."""
    return Cluster(api, namespace)


def status(obj: Obj | None) -> Obj:
    return (obj or {}).get("status") or {}


def condition(obj: Obj | None, type_: str) -> Obj:
    return next((c for c in status(obj).get("conditions") or [] if c["type"] == type_), {})


def vm_manifest(name: str, run_strategy: str = "Always", annotations: Obj | None = None) -> Obj:
    """A VM with a pod-network and a Multus interface, as an operator would write it."""
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "runStrategy": run_strategy,
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"note": "from-template"}},
                "spec": {
                    "domain": {
                        "devices": {
                            "interfaces": [
                                {"name": "default", "masquerade": {}},
                                {"name": "tenant", "bridge": {}},
                            ],
                            "disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                        },
                        "resources": {"requests": {"memory": "64Mi"}},
                    },
                    "networks": [
                        {"name": "default", "pod": {}},
                        {"name": "tenant", "multus": {"networkName": "tenant-net"}},
                    ],
                    "volumes": [
                        {"name": "root", "containerDisk": {"image": "quay.io/example/cirros"}}
                    ],
                },
            },
        },
    }


def data_volume(name: str, source: Obj, size: str = "2Gi", annotations: Obj | None = None) -> Obj:
    return {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"source": source, "storage": {"resources": {"requests": {"storage": size}}}},
    }


def claim(name: str, size: str) -> client.V1PersistentVolumeClaim:
    return client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": size}),
        ),
    )


def running(cluster: Cluster, name: str) -> Obj | None:
    """The VMI once it and its VM report Running, else None."""
    vmi = cluster.vmi(name)
    vm = cluster.vm(name)
    if status(vmi).get("phase") == "Running" and status(vm).get("printableStatus") == "Running":
        return vmi
    return None


def printable(cluster: Cluster, name: str, wanted: str) -> Obj | None:
    vm = cluster.vm(name)
    return vm if status(vm).get("printableStatus") == wanted else None


def bound(cluster: Cluster, name: str) -> Obj | None:
    pvc = cluster.pvc(name)
    return pvc if status(pvc).get("phase") == "Bound" else None


# --- VirtualMachines -------------------------------------------------------------------------


@pytest.mark.integration
def test_vm_runs_with_addresses(cluster: Cluster) -> None:
    cluster.create(KUBEVIRT, "virtualmachines", vm_manifest("web"))

    vmi = eventually(lambda: running(cluster, "web"), "the VM to run")

    vm = cluster.vm("web")
    assert status(vm)["ready"] is True
    assert status(vm)["created"] is True
    assert condition(vm, "Ready")["status"] == "True"
    assert status(vm)["observedGeneration"] == vm["metadata"]["generation"]
    owner = vmi["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "VirtualMachine",
        vm["metadata"]["uid"],
        True,
    )
    assert vmi["metadata"]["labels"] == {"app": "web"}
    assert vmi["metadata"]["annotations"]["note"] == "from-template"
    assert status(vmi)["nodeName"] == "sim-node-0"
    assert condition(vmi, "Ready")["status"] == "True"
    pod, tenant = status(vmi)["interfaces"]
    assert (pod["name"], pod["interfaceName"], tenant["interfaceName"]) == (
        "default",
        "eth0",
        "eth1",
    )
    assert ipaddress.ip_address(pod["ipAddress"]) in ipaddress.ip_network("10.244.0.0/16")
    assert ipaddress.ip_address(tenant["ipAddress"]) in ipaddress.ip_network("10.245.0.0/16")
    assert pod["ipAddresses"] == [pod["ipAddress"]]
    assert pod["mac"] != tenant["mac"]


@pytest.mark.integration
def test_addresses_are_unique(cluster: Cluster) -> None:
    for name in ("a", "b"):
        cluster.create(KUBEVIRT, "virtualmachines", vm_manifest(name))
    addresses = [
        eventually(lambda n=name: running(cluster, n), f"VM {name} to run")["status"]["interfaces"][
            0
        ]["ipAddress"]
        for name in ("a", "b")
    ]
    assert addresses[0] != addresses[1]


@pytest.mark.integration
def test_halted_vm_stops(cluster: Cluster) -> None:
    cluster.create(KUBEVIRT, "virtualmachines", vm_manifest("db"))
    eventually(lambda: running(cluster, "db"), "the VM to run")

    cluster.patch(KUBEVIRT, "virtualmachines", "db", {"spec": {"runStrategy": "Halted"}})

    vm = eventually(lambda: printable(cluster, "db", "Stopped"), "the VM to stop")
    assert cluster.vmi("db") is None
    assert (status(vm)["ready"], status(vm)["created"]) == (False, False)


@pytest.mark.integration
def test_deleted_vmi_is_recreated(cluster: Cluster) -> None:
    cluster.create(KUBEVIRT, "virtualmachines", vm_manifest("app"))
    first = eventually(lambda: running(cluster, "app"), "the VM to run")

    cluster.custom.delete_namespaced_custom_object(
        *KUBEVIRT, cluster.ns, "virtualmachineinstances", "app"
    )

    def restarted() -> Obj | None:
        vmi = running(cluster, "app")
        return vmi if vmi and vmi["metadata"]["uid"] != first["metadata"]["uid"] else None

    eventually(restarted, "a new VMI to run")


@pytest.mark.integration
def test_pause_annotation_pauses_and_unpauses(cluster: Cluster) -> None:
    cluster.create(KUBEVIRT, "virtualmachines", vm_manifest("p"))
    eventually(lambda: running(cluster, "p"), "the VM to run")

    cluster.annotate(KUBEVIRT, "virtualmachines", "p", PAUSED, "true")
    eventually(lambda: printable(cluster, "p", "Paused"), "the VM to pause")
    assert condition(cluster.vmi("p"), "Paused")["status"] == "True"

    cluster.annotate(KUBEVIRT, "virtualmachines", "p", PAUSED, None)
    eventually(lambda: running(cluster, "p"), "the VM to run again")
    assert condition(cluster.vmi("p"), "Paused") == {}


@pytest.mark.integration
def test_fail_schedule_then_recover(cluster: Cluster) -> None:
    message = "0/1 nodes are available: 1 Insufficient memory."
    cluster.create(
        KUBEVIRT, "virtualmachines", vm_manifest("big", annotations={FAIL_SCHEDULE: message})
    )

    vm = eventually(lambda: printable(cluster, "big", "ErrorUnschedulable"), "ErrorUnschedulable")
    assert condition(vm, "Ready")["status"] == "False"
    assert condition(vm, "Ready")["message"] == message
    vmi = cluster.vmi("big")
    assert status(vmi)["phase"] == "Scheduling"
    scheduled = condition(vmi, "PodScheduled")
    assert (scheduled["status"], scheduled["reason"], scheduled["message"]) == (
        "False",
        "Unschedulable",
        message,
    )

    cluster.annotate(KUBEVIRT, "virtualmachines", "big", FAIL_SCHEDULE, None)
    eventually(lambda: running(cluster, "big"), "the VM to run once schedulable")


@pytest.mark.integration
def test_fail_schedule_on_the_namespace(cluster: Cluster) -> None:
    patch = {"metadata": {"annotations": {FAIL_SCHEDULE: ""}}}
    cluster.core.patch_namespace(cluster.ns, patch)
    cluster.create(KUBEVIRT, "virtualmachines", vm_manifest("n"))
    vm = eventually(lambda: printable(cluster, "n", "ErrorUnschedulable"), "ErrorUnschedulable")
    assert "Insufficient memory" in condition(vm, "Ready")["message"]

    cluster.core.patch_namespace(cluster.ns, {"metadata": {"annotations": {FAIL_SCHEDULE: None}}})
    eventually(lambda: running(cluster, "n"), "the VM to run once the namespace is fixed")


# --- DataVolumes -----------------------------------------------------------------------------


@pytest.mark.integration
def test_http_import_progresses_to_succeeded(cluster: Cluster) -> None:
    source = {"http": {"url": "https://images.example.com/cirros.qcow2"}}
    cluster.create(CDI, "datavolumes", data_volume("img", source, size="2Gi"))
    seen: list[tuple[str, str]] = []

    def succeeded() -> Obj | None:
        dv = cluster.dv("img")
        state = (status(dv).get("phase", ""), status(dv).get("progress", ""))
        if not seen or seen[-1] != state:
            seen.append(state)
        return dv if state[0] == "Succeeded" else None

    dv = eventually(succeeded, "the import to succeed")

    phases = [phase for phase, _ in seen]
    assert "ImportScheduled" in phases
    assert "ImportInProgress" in phases
    assert any(p == "ImportInProgress" and progress.endswith("%") for p, progress in seen)
    assert status(dv)["progress"] == "100.0%"
    assert status(dv)["claimName"] == "img"
    assert [condition(dv, t)["status"] for t in ("Bound", "Ready", "Running")] == [
        "True",
        "True",
        "False",
    ]
    assert condition(dv, "Running")["reason"] == "Completed"
    pvc = bound(cluster, "img")
    assert pvc is not None
    assert pvc["status"]["capacity"]["storage"] == "2Gi"
    assert pvc["metadata"]["ownerReferences"][0]["uid"] == dv["metadata"]["uid"]
    pv = cluster.pv(pvc["spec"]["volumeName"])
    assert pv["spec"]["csi"]["driver"] == DRIVER


@pytest.mark.integration
def test_import_from_an_invalid_host_fails(cluster: Cluster) -> None:
    url = "http://images.example.invalid/disk.img"
    cluster.create(CDI, "datavolumes", data_volume("bad", {"http": {"url": url}}))

    dv = eventually(
        lambda: (d := cluster.dv("bad")) and status(d).get("phase") == "Failed" and d,
        "the import to fail",
    )

    running_condition = condition(dv, "Running")
    assert (running_condition["status"], running_condition["reason"]) == ("False", "Error")
    assert running_condition["message"] == (
        f'Unable to connect to http data source: Get "{url}": '
        "dial tcp: lookup images.example.invalid: no such host"
    )
    assert status(dv)["restartCount"] == 1


@pytest.mark.integration
def test_upload_waits_for_the_upload(cluster: Cluster) -> None:
    cluster.create(CDI, "datavolumes", data_volume("up", {"upload": {}}, size="1Gi"))

    eventually(
        lambda: status(cluster.dv("up")).get("phase") == "UploadReady", "the DV to be UploadReady"
    )
    assert bound(cluster, "up") is not None

    cluster.annotate(CDI, "datavolumes", "up", UPLOADED, "true")
    dv = eventually(
        lambda: (d := cluster.dv("up")) and status(d).get("phase") == "Succeeded" and d,
        "the upload to complete",
    )
    assert condition(dv, "Ready")["status"] == "True"


# --- storage ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_claim_is_provisioned_grown_and_reclaimed(cluster: Cluster) -> None:
    cluster.core.create_namespaced_persistent_volume_claim(cluster.ns, claim("data", "1Gi"))
    pvc = eventually(lambda: bound(cluster, "data"), "kube-controller-manager to bind the claim")
    assert pvc["spec"]["storageClassName"] == "standard"  # the default class
    volume = pvc["spec"]["volumeName"]

    cluster.core.patch_namespaced_persistent_volume_claim(
        "data", cluster.ns, {"spec": {"resources": {"requests": {"storage": "3Gi"}}}}
    )
    eventually(
        lambda: status(cluster.pvc("data")).get("capacity", {}).get("storage") == "3Gi",
        "the claim's capacity to grow",
    )
    assert cluster.pv(volume)["spec"]["capacity"]["storage"] == "3Gi"

    cluster.core.delete_namespaced_persistent_volume_claim("data", cluster.ns)
    eventually(lambda: cluster.pv(volume) is None, "the released volume to be deleted")


@pytest.mark.integration
def test_volume_snapshot_becomes_ready(cluster: Cluster) -> None:
    cluster.core.create_namespaced_persistent_volume_claim(cluster.ns, claim("src", "1Gi"))
    eventually(lambda: bound(cluster, "src"), "the source claim to be bound")
    cluster.create(SNAPSHOTS, "volumesnapshots", snapshot_manifest("snap", "src"))

    snapshot = eventually(
        lambda: (
            (s := cluster.get(SNAPSHOTS, "volumesnapshots", "snap"))
            and status(s).get("readyToUse")
            and s
        ),
        "the snapshot to be ready",
    )

    assert status(snapshot)["restoreSize"] == "1Gi"
    assert status(snapshot)["creationTime"]
    content_name = status(snapshot)["boundVolumeSnapshotContentName"]
    assert content_name == f"snapcontent-{snapshot['metadata']['uid']}"
    content = cluster.custom.get_cluster_custom_object(
        *SNAPSHOTS, "volumesnapshotcontents", content_name
    )
    assert content["spec"]["driver"] == DRIVER
    assert content["spec"]["volumeSnapshotRef"]["uid"] == snapshot["metadata"]["uid"]
    assert content["status"]["readyToUse"] is True


# --- convergence -----------------------------------------------------------------------------


def snapshot_manifest(name: str, claim_name: str) -> Obj:
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name},
        "spec": {"source": {"persistentVolumeClaimName": claim_name}},
    }


@pytest.mark.integration
def test_converged_objects_are_not_written(
    api: client.ApiClient, cluster: Cluster, simulator: Simulator
) -> None:
    cluster.create(KUBEVIRT, "virtualmachines", vm_manifest("still"))
    source = {"http": {"url": "https://images.example.com/disk.img"}}
    cluster.create(CDI, "datavolumes", data_volume("still-disk", source))
    eventually(lambda: running(cluster, "still"), "the VM to run")
    eventually(
        lambda: status(cluster.dv("still-disk")).get("phase") == "Succeeded", "the DV to succeed"
    )
    cluster.create(SNAPSHOTS, "volumesnapshots", snapshot_manifest("still-snap", "still-disk"))
    eventually(
        lambda: status(cluster.get(SNAPSHOTS, "volumesnapshots", "still-snap")).get("readyToUse"),
        "the snapshot to be ready",
    )

    def versions() -> dict[str, str]:
        pvc = cluster.pvc("still-disk") or {}
        objects = {
            "vm": cluster.vm("still"),
            "vmi": cluster.vmi("still"),
            "dv": cluster.dv("still-disk"),
            "pvc": pvc,
            "pv": cluster.pv(pvc["spec"]["volumeName"]),
            "snapshot": cluster.get(SNAPSHOTS, "volumesnapshots", "still-snap"),
        }
        return {kind: (obj or {})["metadata"]["resourceVersion"] for kind, obj in objects.items()}

    before = versions()
    # A second simulator starting from scratch (as after a restart) reconciles everything
    # again: it too must find nothing to write.
    with Simulator(api, simulator.delays):
        time.sleep(2.0)  # a stability window: nothing may happen in it
    assert versions() == before


@pytest.mark.integration
def test_stop_is_prompt(api: client.ApiClient, simulator: Simulator) -> None:
    other = Simulator(api, simulator.delays)
    other.start()
    started = time.monotonic()
    other.stop()
    assert time.monotonic() - started < 2.5


# --- the machinery, no cluster needed -----------------------------------------------------------


def test_queue_deduplicates_and_keeps_the_earliest_due_time() -> None:
    queue = DelayQueue()
    key = Key("vm", "ns", "a")
    queue.add(key, delay=60)
    queue.add(key)  # an event must not wait behind a requeue delay
    queue.add(key, delay=30)
    assert len(queue) == 1
    assert queue.get() == key

    queue.add(key)  # while a worker holds it: parked, not handed to a second worker
    assert len(queue) == 0
    queue.done(key)
    assert queue.get() == key
    queue.done(key)
    queue.shutdown()
    assert queue.get() is None


def test_delays_come_from_the_environment() -> None:
    environ = {"OSTACK_SIM_VM_START": "1.5", "OSTACK_SIM_IMPORT_STEPS": "3"}
    assert Delays.from_env(environ) == Delays(vm_start=1.5, import_steps=3)
    with pytest.raises(ValueError, match="OSTACK_SIM_BIND"):
        Delays.from_env({"OSTACK_SIM_BIND": "soon"})
