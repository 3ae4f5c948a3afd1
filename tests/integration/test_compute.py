"""Nova: Instances become KubeVirt VMs, on the real control plane with the status
simulator standing in for KubeVirt, run by the real identity, image and compute operators."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client, dynamic

from operators.common.kinds import VERSION
from operators.compute import builders
from operators.compute.api import INSTANCE, InstanceSpec
from operators.devcluster.simulator import FAIL_SCHEDULE
from operators.image.api import IMAGE
from tests.support import Operator, an_event, eventually
from tests.support import create_object as make
from tests.support import patch_spec as patch
from tests.support import read_object as get

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOstackTestKey tester@laptop"


@pytest.fixture(scope="module", autouse=True)
def operators(run_operator: Callable[..., Operator], simulator: object) -> None:
    for service in ("identity", "image", "compute", "blockstorage"):
        run_operator(service)


def instance(api: client.ApiClient, ns: str, name: str) -> Obj:
    return get(api, INSTANCE.group, VERSION, INSTANCE.plural, ns, name) or {}


def in_phase(api: client.ApiClient, ns: str, name: str, phase: str) -> Obj | None:
    obj = instance(api, ns, name)
    return obj if obj.get("status", {}).get("phase") == phase else None


def ready(obj: Obj) -> Obj:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def an_image(api: client.ApiClient, ns: str, name: str = "cirros", **extra: Any) -> None:
    spec = {"source": {"http": {"url": "http://images.example.org/c.img"}}, "diskFormat": "qcow2"}
    make(api, IMAGE, ns, name, {**spec, **extra})
    eventually(
        lambda: (
            (get(api, IMAGE.group, VERSION, IMAGE.plural, ns, name) or {})
            .get("status", {})
            .get("phase")
            == "active"
        ),
        f"Image {name} active",
    )


def server(**extra: Any) -> Obj:
    return {"flavor": "m1.small", "image": {"name": "cirros"}, **extra}


def test_an_instance_boots_from_an_image_to_active(api: client.ApiClient, project) -> None:
    ns = project()
    an_image(api, ns)
    make(
        api,
        INSTANCE,
        ns,
        "web",
        server(keyPairs=[KEY], userData="#cloud-config\npackages: [nginx]\n"),
    )
    obj = eventually(lambda: in_phase(api, ns, "web", "ACTIVE"), "the Instance ACTIVE")
    status = obj["status"]
    assert ready(obj)["status"] == "True"
    assert status["powerState"] == "Running"
    assert status["host"] == "sim-node-0"
    assert status["vmName"] == "web"
    assert status["addresses"][0]["network"] == "pod"
    assert status["addresses"][0]["ip"].startswith("10.244.")
    assert status["flavor"] == {"name": "m1.small", "cpu": 1, "memory": "2Gi"}
    assert status["launchedAt"]

    vm = get(api, "kubevirt.io", "v1", "virtualmachines", ns, "web")
    assert vm["spec"]["instancetype"] == {
        "kind": "VirtualMachineClusterInstancetype",
        "name": "m1.small",
    }
    template = vm["spec"]["dataVolumeTemplates"][0]
    assert template["spec"]["sourceRef"] == {
        "kind": "DataSource",
        "namespace": ns,
        "name": "image-cirros",
    }
    assert template["spec"]["storage"]["resources"]["requests"]["storage"] == "20Gi"  # m1.small
    assert "packages" not in str(vm), "user data must not appear in the VirtualMachine"
    root = get(api, "cdi.kubevirt.io", "v1beta1", "datavolumes", ns, "web-root")
    assert root["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachine"
    assert root["status"]["phase"] == "Succeeded"
    secret = client.CoreV1Api(api).read_namespaced_secret("web-cloudinit", ns)
    assert secret.metadata.owner_references[0].kind == "Instance"
    user_data = base64.b64decode(secret.data["userdata"]).decode()
    assert KEY in user_data and "nginx" in user_data


def test_stop_start_and_reboot_move_the_phase_as_nova_does(api: client.ApiClient, project) -> None:
    ns = project()
    an_image(api, ns)
    make(api, INSTANCE, ns, "vm", server())
    eventually(lambda: in_phase(api, ns, "vm", "ACTIVE"), "ACTIVE")

    patch(api, INSTANCE, ns, "vm", {"powerState": "Stopped"})
    eventually(lambda: in_phase(api, ns, "vm", "SHUTOFF"), "SHUTOFF")
    eventually(
        lambda: ready(instance(api, ns, "vm"))["status"] == "True" and not _vmi(api, ns, "vm"),
        "the VMI to go and the stop to be complete",
    )
    patch(api, INSTANCE, ns, "vm", {"powerState": "Running"})
    eventually(lambda: in_phase(api, ns, "vm", "ACTIVE"), "ACTIVE again")

    first = _vmi(api, ns, "vm")["metadata"]["uid"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    time.sleep(1)  # rebootRequestedAt has a one-second resolution; the VMI must be older
    patch(api, INSTANCE, ns, "vm", {"rebootRequestedAt": now})
    eventually(
        lambda: (v := _vmi(api, ns, "vm")) and v["metadata"]["uid"] != first,
        "a new VMI after the reboot",
    )
    obj = eventually(lambda: in_phase(api, ns, "vm", "ACTIVE"), "ACTIVE after the reboot")
    assert obj["status"]["lastRebootAt"] == now


def test_a_scheduling_failure_is_error_with_the_reason(api: client.ApiClient, project) -> None:
    ns = project()
    an_image(api, ns)
    core = client.CoreV1Api(api)
    core.patch_namespace(
        ns,
        {
            "metadata": {
                "annotations": {FAIL_SCHEDULE: "0/3 nodes are available: 3 Insufficient memory."}
            }
        },
    )
    make(api, INSTANCE, ns, "big", server())
    obj = eventually(lambda: in_phase(api, ns, "big", "ERROR"), "ERROR")
    assert "Insufficient memory" in ready(obj)["message"]
    core.patch_namespace(ns, {"metadata": {"annotations": {FAIL_SCHEDULE: None}}})
    # KubeVirt would retry scheduling; a restart of the VMI is what makes the simulator.
    eventually(lambda: in_phase(api, ns, "big", "ACTIVE") or _kick(api, ns, "big"), "ACTIVE")


def _kick(api: client.ApiClient, ns: str, name: str) -> None:
    vmi = _vmi(api, ns, name)
    if vmi and vmi.get("status", {}).get("phase") != "Running":
        client.CustomObjectsApi(api).delete_namespaced_custom_object(
            "kubevirt.io", "v1", ns, "virtualmachineinstances", name
        )
    time.sleep(0.5)


def _vmi(api: client.ApiClient, ns: str, name: str) -> Obj | None:
    return get(api, "kubevirt.io", "v1", "virtualmachineinstances", ns, name)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (server(image={"name": "nope"}), "Image nope does not exist"),
        (server(flavor="m9.huge"), "flavor m9.huge does not exist (flavors: m1.large"),
        (server(flavor="m1.tiny"), "needs at least 1Gi of RAM"),
    ],
    ids=["missing-image", "unknown-flavor", "flavor-too-small"],
)
def test_bad_references_are_refused_and_fixing_recovers(
    api: client.ApiClient, project, spec: Obj, message: str
) -> None:
    ns = project()
    an_image(api, ns, minRam="1Gi")
    make(api, INSTANCE, ns, "x", spec)
    obj = eventually(lambda: in_phase(api, ns, "x", "ERROR"), "the refusal")
    condition = ready(obj)
    assert condition["reason"] == "InvalidConfiguration"
    assert message in condition["message"]
    an_event(api, ns, "x", lambda e: e.type == "Warning")
    patch(api, INSTANCE, ns, "x", server())
    eventually(lambda: in_phase(api, ns, "x", "ACTIVE"), "recovery once the spec is fixed")


def test_images_of_other_projects_follow_their_visibility(api: client.ApiClient, project) -> None:
    owner, tenant = project(), project()
    an_image(api, owner, "private-img")
    an_image(api, owner, "public-img", visibility="public", properties={"hw_disk_bus": "sata"})
    make(api, INSTANCE, tenant, "a", server(image={"name": "private-img", "project": owner}))
    obj = eventually(lambda: in_phase(api, tenant, "a", "ERROR"), "the private image refused")
    assert f"is private and not shared with Project {tenant}" in ready(obj)["message"]
    make(api, INSTANCE, tenant, "b", server(image={"name": "public-img", "project": owner}))
    eventually(lambda: in_phase(api, tenant, "b", "ACTIVE"), "the public image to boot")
    vm = get(api, "kubevirt.io", "v1", "virtualmachines", tenant, "b")
    assert vm["spec"]["dataVolumeTemplates"][0]["spec"]["sourceRef"]["namespace"] == owner
    # The image's preference, copied into the tenant's namespace (a VM can name no other).
    assert vm["spec"]["preference"] == {
        "kind": "VirtualMachinePreference",
        "name": "b-image-preference",
    }
    copy = get(
        api,
        "instancetype.kubevirt.io",
        "v1beta1",
        "virtualmachinepreferences",
        tenant,
        "b-image-preference",
    )
    assert copy["spec"]["devices"] == {"preferredDiskBus": "sata"}
    assert copy["metadata"]["ownerReferences"][0]["kind"] == "Instance"


def test_pause_and_unpause_go_through_kubevirts_api(api: client.ApiClient, project) -> None:
    ns = project()
    an_image(api, ns)
    make(api, INSTANCE, ns, "p", server())
    eventually(lambda: in_phase(api, ns, "p", "ACTIVE"), "ACTIVE")
    patch(api, INSTANCE, ns, "p", {"powerState": "Paused"})
    obj = eventually(lambda: in_phase(api, ns, "p", "PAUSED"), "PAUSED")
    assert obj["status"]["powerState"] == "Paused"
    assert ready(obj)["status"] == "True"
    patch(api, INSTANCE, ns, "p", {"powerState": "Running"})
    obj = eventually(lambda: in_phase(api, ns, "p", "ACTIVE"), "ACTIVE after unpausing")
    assert obj["status"]["powerState"] == "Running"


def test_a_converged_instance_is_left_alone(api: client.ApiClient, project) -> None:
    ns = project()
    an_image(api, ns)
    make(api, INSTANCE, ns, "calm", server())
    eventually(lambda: in_phase(api, ns, "calm", "ACTIVE"), "ACTIVE")
    handled = "compute.ostack.dev/last-handled-configuration"
    eventually(
        lambda: handled in (instance(api, ns, "calm")["metadata"].get("annotations") or {}),
        "the handler to finish",
    )

    def versions() -> list[str]:
        return [
            instance(api, ns, "calm")["metadata"]["resourceVersion"],
            get(api, "kubevirt.io", "v1", "virtualmachines", ns, "calm")["metadata"][
                "resourceVersion"
            ],
            _vmi(api, ns, "calm")["metadata"]["resourceVersion"],
            client.CoreV1Api(api)
            .read_namespaced_secret("calm-cloudinit", ns)
            .metadata.resource_version,
        ]

    def settled() -> list[str] | None:
        # The simulated VMI's own status updates may still arrive on a busy machine.
        first = versions()
        time.sleep(1)
        return first if versions() == first else None

    before = eventually(settled, "the Instance to settle")
    time.sleep(2)  # a window in which nothing should happen
    assert versions() == before


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"availabilityZone": "zone-a", "serverGroup": {"name": "g", "policy": "anti-affinity"}},
        {"serverGroup": {"name": "g", "policy": "soft-affinity"}, "metadata": {"role": "db x"}},
        {"flavor": None, "resources": {"cpu": 2, "memory": "3Gi"}, "powerState": "Stopped"},
        {"image": None, "bootVolume": {"name": "root"}, "shelved": True},
    ],
    ids=["plain", "zone-anti-affinity", "soft-affinity-metadata", "inline-resources", "volume"],
)
def test_the_virtual_machine_passes_kubevirts_schema_strictly(
    api: client.ApiClient, namespace: str, extra: Obj
) -> None:
    spec = InstanceSpec.model_validate(
        {k: v for k, v in {**server(), **extra}.items() if v is not None}
    )
    body = {
        "apiVersion": INSTANCE.api_version,
        "kind": "Instance",
        "metadata": {
            "name": "vm",
            "namespace": namespace,
            "uid": "00000000-0000-0000-0000-000000000001",
        },
    }
    boot = (
        builders.Boot(volume_pvc="volume-root")
        if spec.boot_volume
        else builders.Boot(
            image_namespace="images", image_name="image-cirros", preference="image-cirros"
        )
    )
    plan = builders.Plan(
        builders.Size(1, 2**31, 20 * 2**30, spec.flavor),
        boot,
        [builders.Nic("private", "pod", namespace), builders.Nic("lan", "bridge", namespace)],
        [builders.Attached("data", "volume-data"), builders.Attached("shared", "volume-s", True)],
    )
    vm = builders.virtual_machine(body, "p", spec, plan)
    dynamic_client = dynamic.DynamicClient(api)
    found = dynamic_client.resources.get(api_version=vm["apiVersion"], kind=vm["kind"])
    dynamic_client.request(
        "POST",
        f"{found.path(namespace=namespace)}?dryRun=All&fieldValidation=Strict",
        body=vm,
        content_type="application/json",
    )


def test_changing_the_flavor_resizes_through_a_restart(api: client.ApiClient, project) -> None:
    ns = project()
    an_image(api, ns)
    make(api, INSTANCE, ns, "grow", server())
    eventually(lambda: in_phase(api, ns, "grow", "ACTIVE"), "ACTIVE")
    first = _vmi(api, ns, "grow")["metadata"]["uid"]
    patch(api, INSTANCE, ns, "grow", {"flavor": "m1.medium"})

    def resized() -> Obj | None:
        vmi = _vmi(api, ns, "grow")
        obj = in_phase(api, ns, "grow", "ACTIVE")
        fresh = vmi and vmi["metadata"]["uid"] != first
        return obj if fresh and obj and obj["status"]["flavor"]["name"] == "m1.medium" else None

    obj = eventually(resized, "the Instance to run with the new flavor")
    assert obj["status"]["flavor"] == {"name": "m1.medium", "cpu": 2, "memory": "4Gi"}
    vmi = _vmi(api, ns, "grow")
    assert vmi["metadata"]["annotations"]["ostack.dev/size"] == "m1.medium"
    an_event(api, ns, "grow", lambda e: e.reason == "Resizing")


def test_an_image_goes_once_its_instances_have_their_own_copy(
    api: client.ApiClient, project
) -> None:
    ns = project()
    an_image(api, ns)
    make(api, INSTANCE, ns, "web", server())
    eventually(lambda: in_phase(api, ns, "web", "ACTIVE"), "ACTIVE on a cloned root disk")
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        IMAGE.group, VERSION, ns, IMAGE.plural, "cirros"
    )
    eventually(
        lambda: get(api, IMAGE.group, VERSION, IMAGE.plural, ns, "cirros") is None,
        "the image to go: the Instance's root disk is its own copy",
    )
    assert in_phase(api, ns, "web", "ACTIVE"), "the Instance keeps running"


def test_rebuild_recreates_the_root_disk_and_keeps_the_instance(
    api: client.ApiClient, project
) -> None:
    ns = project()
    an_image(api, ns)
    an_image(api, ns, "fedora")
    make(api, INSTANCE, ns, "rb", server())
    eventually(lambda: in_phase(api, ns, "rb", "ACTIVE"), "ACTIVE")
    old_disk = get(api, "cdi.kubevirt.io", "v1beta1", "datavolumes", ns, "rb-root")["metadata"][
        "uid"
    ]
    time.sleep(1)  # rebuildRequestedAt has a one-second resolution; the old disk must be older
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch(api, INSTANCE, ns, "rb", {"image": {"name": "fedora"}, "rebuildRequestedAt": now})

    def rebuilt() -> Obj | None:
        disk = get(api, "cdi.kubevirt.io", "v1beta1", "datavolumes", ns, "rb-root")
        obj = in_phase(api, ns, "rb", "ACTIVE")
        return obj if disk and disk["metadata"]["uid"] != old_disk and obj else None

    obj = eventually(rebuilt, "a new root disk and the Instance ACTIVE again")
    assert obj["status"]["lastRebuildAt"] == now
    disk = get(api, "cdi.kubevirt.io", "v1beta1", "datavolumes", ns, "rb-root")
    assert disk["spec"]["sourceRef"]["name"] == "image-fedora"
    assert obj["metadata"]["name"] == "rb" and obj["status"]["vmName"] == "rb"
    an_event(api, ns, "rb", lambda e: e.reason == "Rebuilding")


def test_shelve_frees_compute_and_unshelve_brings_it_back(api: client.ApiClient, project) -> None:
    ns = project()
    an_image(api, ns)
    make(api, INSTANCE, ns, "sh", server())
    eventually(lambda: in_phase(api, ns, "sh", "ACTIVE"), "ACTIVE")
    patch(api, INSTANCE, ns, "sh", {"shelved": True})
    eventually(
        lambda: in_phase(api, ns, "sh", "SHELVED_OFFLOADED") and not _vmi(api, ns, "sh"),
        "SHELVED_OFFLOADED with no guest running",
    )
    assert get(api, "cdi.kubevirt.io", "v1beta1", "datavolumes", ns, "sh-root"), "disks stay"
    patch(api, INSTANCE, ns, "sh", {"shelved": False})
    eventually(lambda: in_phase(api, ns, "sh", "ACTIVE"), "ACTIVE after unshelving")


def test_boot_from_a_volume_and_deletion_takes_the_vm(api: client.ApiClient, project) -> None:
    from operators.blockstorage.api import VOLUME

    ns = project()
    make(api, VOLUME, ns, "boot", {"size": "5Gi", "bootable": True})
    make(api, INSTANCE, ns, "bv", {"flavor": "m1.tiny", "bootVolume": {"name": "boot"}})
    eventually(lambda: in_phase(api, ns, "bv", "ACTIVE"), "ACTIVE from the Volume")
    vm = get(api, "kubevirt.io", "v1", "virtualmachines", ns, "bv")
    root = vm["spec"]["template"]["spec"]["volumes"][0]
    assert root == {"name": "root", "persistentVolumeClaim": {"claimName": "volume-boot"}}
    assert "dataVolumeTemplates" not in vm["spec"]
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        INSTANCE.group, VERSION, ns, INSTANCE.plural, "bv"
    )
    eventually(
        lambda: get(api, "kubevirt.io", "v1", "virtualmachines", ns, "bv") is None,
        "the VM to go with the Instance (garbage collection)",
    )


def test_metering_counts_reconciles_and_a_projects_instances(
    api: client.ApiClient, project, run_operator: Callable[..., Operator]
) -> None:
    ns = project()
    an_image(api, ns)
    make(api, INSTANCE, ns, "metered", server())
    eventually(lambda: in_phase(api, ns, "metered", "ACTIVE"), "ACTIVE")
    compute = run_operator("compute")

    def sample(name: str, **labels: str) -> float | None:
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in compute.metrics().splitlines():
            if line.startswith(f"{name}{{{wanted}}} "):
                return float(line.split()[-1])
        return None

    eventually(lambda: sample("ostack_project_instances", project=ns, phase="ACTIVE") == 1, "1")
    assert sample("ostack_project_vcpus", project=ns) == 1  # m1.small
    assert sample("ostack_project_ram_bytes", project=ns) == 2 * 2**30
    assert (sample("ostack_reconcile_total", kind="Instance", result="success") or 0) >= 1
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        INSTANCE.group, VERSION, ns, INSTANCE.plural, "metered"
    )
    eventually(
        lambda: sample("ostack_project_instances", project=ns, phase="ACTIVE") is None,
        "the deleted Instance no longer counted",
    )
