"""The compute service's pure parts: what an Instance becomes, and how Nova reads KubeVirt."""

from __future__ import annotations

import email
from decimal import Decimal

import pytest
import yaml

from operators.common.status import Reason
from operators.compute import builders, lifecycle
from operators.compute.api import InstanceSpec

GI = 2**30
BODY = {
    "apiVersion": "compute.ostack.dev/v1alpha1",
    "kind": "Instance",
    "metadata": {"name": "web", "namespace": "demo", "uid": "u-1"},
}
SMALL = builders.Size(1, Decimal(2 * GI), Decimal(20 * GI), "m1.small")
IMAGE_BOOT = builders.Boot(image_namespace="demo", image_name="image-cirros", min_disk=Decimal(GI))


def spec(**fields) -> InstanceSpec:
    return InstanceSpec.model_validate(
        {"flavor": "m1.small", "image": {"name": "cirros"}, **fields}
    )


@pytest.mark.parametrize(
    ("fields", "size", "boot", "expected"),
    [
        ({}, SMALL, IMAGE_BOOT, 20 * GI),
        ({"rootDiskSize": "50Gi"}, SMALL, IMAGE_BOOT, 50 * GI),
        ({}, builders.Size(1, Decimal(GI)), builders.Boot(min_disk=Decimal(3 * GI)), 3 * GI),
    ],
)
def test_root_disk_is_the_largest_of_request_flavor_and_min_disk(fields, size, boot, expected):
    assert builders.root_disk_size(spec(**fields), size, boot) == expected


def test_keys_merge_into_cloud_config() -> None:
    text = builders.user_data(["ssh-ed25519 AAA a@b"], "#cloud-config\npackages: [nginx]\n")
    assert text.startswith("#cloud-config\n")
    config = yaml.safe_load(text)
    assert config == {"packages": ["nginx"], "ssh_authorized_keys": ["ssh-ed25519 AAA a@b"]}


def test_a_script_goes_beside_the_keys_as_multipart() -> None:
    text = builders.user_data(["ssh-ed25519 AAA a@b"], "#!/bin/sh\necho hi\n")
    parts = [p for p in email.message_from_string(text).walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in parts] == ["text/cloud-config", "text/x-shellscript"]


def test_vm_runs_the_flavor_and_clones_the_image() -> None:
    vm = builders.virtual_machine(
        BODY, "demo", spec(securityGroups=["web"]), builders.Plan(SMALL, IMAGE_BOOT)
    )
    assert vm["spec"]["runStrategy"] == "Always"
    assert vm["spec"]["instancetype"]["name"] == "m1.small"
    assert vm["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    labels = vm["spec"]["template"]["metadata"]["labels"]
    assert labels["securitygroup.ostack.dev/web"] == "" and labels["ostack.dev/instance"] == "web"
    assert labels["ostack.dev/owner-kind"] == "Instance"
    volumes = vm["spec"]["template"]["spec"]["volumes"]
    assert volumes[1] == {
        "name": "cloudinit",
        "cloudInitNoCloud": {"secretRef": {"name": "web-cloudinit"}},
    }


def test_no_security_group_means_the_default_one() -> None:
    vm = builders.virtual_machine(BODY, "demo", spec(), builders.Plan(SMALL, IMAGE_BOOT))
    assert "securitygroup.ostack.dev/default" in vm["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize(
    ("policy", "kind", "hard"),
    [
        ("affinity", "podAffinity", True),
        ("anti-affinity", "podAntiAffinity", True),
        ("soft-affinity", "podAffinity", False),
        ("soft-anti-affinity", "podAntiAffinity", False),
    ],
)
def test_server_group_policies(policy, kind, hard) -> None:
    vm = builders.virtual_machine(
        BODY,
        "demo",
        spec(serverGroup={"name": "g", "policy": policy}),
        builders.Plan(SMALL, IMAGE_BOOT),
    )
    affinity = vm["spec"]["template"]["spec"]["affinity"]
    assert set(affinity) == {kind}
    key = (
        "requiredDuringSchedulingIgnoredDuringExecution"
        if hard
        else "preferredDuringSchedulingIgnoredDuringExecution"
    )
    assert key in affinity[kind]


def test_secondary_networks_become_multus_interfaces() -> None:
    nics = [builders.Nic("private", "pod", "demo", "demo"), builders.Nic("lan", "vlan", "demo")]
    vm = builders.virtual_machine(BODY, "demo", spec(), builders.Plan(SMALL, IMAGE_BOOT, nics))
    template = vm["spec"]["template"]["spec"]
    assert [n["name"] for n in template["networks"]] == ["default", "lan"]
    assert template["networks"][1]["multus"] == {"networkName": "demo/lan"}
    labels = vm["spec"]["template"]["metadata"]["labels"]
    assert labels["network.ostack.dev/name"] == "private"
    assert labels["network.ostack.dev/project"] == "demo"
    assert labels["securitygroup.ostack.dev/default"] == ""
    # Without ostack-allocated addresses the guest keeps cloud-init's own defaults.
    assert all("macAddress" not in i for i in template["domain"]["devices"]["interfaces"])
    assert builders.network_data(BODY, builders.Plan(SMALL, IMAGE_BOOT, nics)) is None


def test_allocated_addresses_reach_the_guest_through_cloud_init_network_data() -> None:
    nics = [builders.Nic("lan", "bridge", "demo", "demo", "10.30.0.7", 24, ("10.30.0.1",), 1400)]
    plan = builders.Plan(SMALL, IMAGE_BOOT, nics)
    vm = builders.virtual_machine(BODY, "demo", spec(), plan)
    interfaces = vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    macs = {i["name"]: i["macAddress"] for i in interfaces}
    assert macs == {n: builders.mac_address(BODY, n) for n in ("default", "lan")}
    assert all(int(mac.split(":")[0], 16) & 0b11 == 0b10 for mac in macs.values())
    cloud_init = vm["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"]
    assert cloud_init["networkDataSecretRef"] == {"name": "web-cloudinit"}
    secret = builders.cloud_init_secret(BODY, "demo", [], None, plan)
    config = yaml.safe_load(secret["stringData"]["networkdata"])
    assert config["ethernets"]["default"] == {
        "match": {"macaddress": macs["default"]},
        "dhcp4": True,
    }
    assert config["ethernets"]["lan"] == {
        "match": {"macaddress": macs["lan"]},
        "addresses": ["10.30.0.7/24"],
        "nameservers": {"addresses": ["10.30.0.1"]},
        "mtu": 1400,
    }


def test_shelved_halts_and_metadata_is_one_annotation() -> None:
    vm = builders.virtual_machine(
        BODY, "demo", spec(shelved=True, metadata={"a b": "c"}), builders.Plan(SMALL, IMAGE_BOOT)
    )
    assert vm["spec"]["runStrategy"] == "Halted"
    assert vm["metadata"]["annotations"] == {"ostack.dev/metadata": '{"a b": "c"}'}


def vmi(phase="Running", paused=False) -> dict:
    conditions = [{"type": "Paused", "status": "True"}] if paused else []
    return {
        "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {
            "phase": phase,
            "nodeName": "node-1",
            "conditions": conditions,
            "interfaces": [
                {"name": "default", "ipAddress": "10.244.0.5", "mac": "02:00:00:00:00:01"}
            ],
        },
    }


VM = {"status": {"printableStatus": "Running"}}


@pytest.mark.parametrize(
    ("fields", "vm", "instance", "rebooting", "phase", "ready"),
    [
        ({}, None, None, False, "BUILD", False),
        ({}, VM, None, False, "BUILD", False),
        ({}, VM, vmi(), False, "ACTIVE", True),
        ({}, VM, None, True, "REBOOT", False),
        ({"powerState": "Stopped"}, VM, None, False, "SHUTOFF", True),
        ({"powerState": "Stopped"}, VM, vmi(), False, "SHUTOFF", False),
        ({"shelved": True}, VM, None, False, "SHELVED_OFFLOADED", True),
        ({"powerState": "Paused"}, VM, vmi(paused=True), False, "PAUSED", True),
        (
            {},
            {"status": {"printableStatus": "ErrorUnschedulable"}},
            vmi("Scheduling"),
            False,
            "ERROR",
            False,
        ),
    ],
)
def test_nova_phase_from_kubevirt(fields, vm, instance, rebooting, phase, ready) -> None:
    observed = lifecycle.observe(spec(**fields), vm, instance, rebooting)
    assert observed.phase == phase
    assert observed.ready[0] is ready


def test_error_carries_the_scheduler_message() -> None:
    scheduling = vmi("Scheduling")
    scheduling["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "message": "0/3 nodes are available"}
    ]
    observed = lifecycle.observe(
        spec(), {"status": {"printableStatus": "ErrorUnschedulable"}}, scheduling, False
    )
    assert observed.ready[1] == Reason.TRANSIENT_ERROR
    assert "0/3 nodes are available" in observed.ready[2]


def test_addresses_name_the_pod_network() -> None:
    assert lifecycle.addresses(vmi()) == [
        {"network": "pod", "interface": "default", "ip": "10.244.0.5", "mac": "02:00:00:00:00:01"}
    ]


def test_a_resize_shows_until_the_new_guest_runs() -> None:
    assert lifecycle.observe(spec(), VM, None, False, resizing=True).phase == "RESIZE"
    assert lifecycle.observe(spec(), VM, vmi(), False, resizing=False).phase == "ACTIVE"


def test_the_template_says_which_size_a_guest_starts_with() -> None:
    vm = builders.virtual_machine(BODY, "demo", spec(), builders.Plan(SMALL, IMAGE_BOOT))
    assert vm["spec"]["template"]["metadata"]["annotations"] == {"ostack.dev/size": "m1.small"}
    inline = builders.Size(2, Decimal(3 * GI))
    assert builders.size_id(inline) == "2x3Gi"


def test_a_rebuild_shows_until_the_new_disk_boots() -> None:
    assert lifecycle.observe(spec(), VM, vmi(), False, rebuilding=True).phase == "REBUILD"
    assert lifecycle.observe(spec(), VM, None, False, rebuilding=True).phase == "REBUILD"


def test_a_floating_address_publishes_the_ports_the_groups_let_in() -> None:
    from operators.network.api import SecurityGroupRule

    rules = [
        SecurityGroupRule.model_validate(r)
        for r in (
            {"direction": "ingress", "protocol": "tcp", "portRangeMin": 80},
            {"direction": "ingress", "protocol": "udp", "portRangeMin": 5000, "portRangeMax": 5002},
            {"direction": "ingress", "protocol": "tcp"},  # every port: no Service form
            {"direction": "ingress"},  # every protocol: no Service form
            {"direction": "egress", "protocol": "tcp", "portRangeMin": 443},
        )
    ]
    ports = builders.floating_ports(rules)
    assert ports == [("TCP", 80), ("UDP", 5000), ("UDP", 5001), ("UDP", 5002)]
    service = builders.floating_service(BODY, "demo", "public", ports)
    assert service["metadata"]["name"] == "web-floating"
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert service["spec"]["selector"] == {"ostack.dev/instance": "web"}
    assert service["spec"]["ports"][0] == {
        "name": "tcp-80",
        "protocol": "TCP",
        "port": 80,
        "targetPort": 80,
    }
    wide = [
        SecurityGroupRule.model_validate(
            {"direction": "ingress", "protocol": "tcp", "portRangeMin": 1, "portRangeMax": 65535}
        )
    ]
    assert len(builders.floating_ports(wide)) == builders.MAX_FLOATING_PORTS
