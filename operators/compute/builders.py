"""Pure builders: an Instance and what it refers to in, its VirtualMachine and cloud-init
Secret out."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

import yaml

from operators.common import children
from operators.common.schema import bytes_quantity, quantity_value
from operators.compute.api import InstanceSpec
from operators.network import labels as net_labels

KUBEVIRT = "kubevirt.io/v1"
CDI = "cdi.kubevirt.io/v1beta1"
ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
SERVER_GROUP_LABEL = "servergroup.ostack.dev/name"
METADATA_ANNOTATION = "ostack.dev/metadata"
SIZE_ANNOTATION = "ostack.dev/size"
"""On the VM template, so every VMI says which size it was started with: a VMI whose size
is not the Instance's is the old one of a resize."""
USERDATA_KEY = "userdata"
NETWORKDATA_KEY = "networkdata"
RUN_STRATEGY = {"Running": "Always", "Paused": "Always", "Stopped": "Halted"}


@dataclass(frozen=True)
class Size:
    """What the Instance runs with: a flavor (an instancetype) or inline resources."""

    cpu: int
    memory: Decimal
    disk: Decimal | None = None
    flavor: str | None = None


def size_id(size: Size) -> str:
    """A short name for a size: the flavor, or `<vCPUs>x<memory>` for inline resources."""
    return size.flavor or f"{size.cpu}x{bytes_quantity(size.memory)}"


@dataclass(frozen=True)
class Boot:
    """Where the root disk comes from: a clone of an Image, or a Volume's PVC."""

    image_namespace: str | None = None
    image_name: str | None = None
    preference: str | None = None
    """The image's VirtualMachinePreference, when it is in the Instance's namespace."""
    min_disk: Decimal | None = None
    volume_pvc: str | None = None
    preference_spec: dict[str, Any] | None = None
    """For another Project's image: its preference's spec, copied into this namespace (a VM
    can only name a preference of its own namespace)."""


@dataclass(frozen=True)
class Nic:
    """One Network the Instance is on."""

    name: str
    type: str
    namespace: str
    project: str = ""
    """The Network's Project."""
    address: str | None = None
    """The address allocated to the Instance (bridge/vlan Networks with subnets)."""
    prefix_length: int | None = None
    dns: tuple[str, ...] = ()
    mtu: int | None = None
    external: bool = False
    """An external Network: the Instance gets a floating address on it."""


@dataclass(frozen=True)
class Attached:
    """A Volume attached to the Instance: hot-plugged while it runs."""

    name: str
    claim: str
    shareable: bool = False


@dataclass(frozen=True)
class Plan:
    """Everything the VirtualMachine is built from, resolved by the controller."""

    size: Size
    boot: Boot
    nics: list[Nic] = field(default_factory=list)
    attached: list[Attached] = field(default_factory=list)


def root_disk_size(spec: InstanceSpec, size: Size, boot: Boot) -> Decimal:
    """Nova's rule: the largest of the requested size, the flavor's disk and minDisk."""
    candidates = [
        quantity_value(spec.root_disk_size) if spec.root_disk_size else None,
        size.disk,
        boot.min_disk,
    ]
    present = [c for c in candidates if c]
    return max(present) if present else Decimal(2**30)


def user_data(keys: list[str], given: str | None) -> str:
    """cloud-init user data with the key pairs: merged into a `#cloud-config`, or beside
    any other kind of user data as a MIME multipart, which cloud-init reads as both."""
    if given is None or given.lstrip().startswith("#cloud-config"):
        config = (yaml.safe_load(given) if given else None) or {}
        if not isinstance(config, dict):
            config = {}
        if keys:
            config["ssh_authorized_keys"] = [*config.get("ssh_authorized_keys", []), *keys]
        return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)
    message = MIMEMultipart()
    if keys:
        message.attach(
            MIMEText(
                "#cloud-config\n" + yaml.safe_dump({"ssh_authorized_keys": keys}),
                "cloud-config",
            )
        )
    subtype = "x-shellscript" if given.startswith("#!") else "plain"
    message.attach(MIMEText(given, subtype))
    return message.as_string()


def secret_name(instance: dict[str, Any]) -> str:
    return f"{instance['metadata']['name']}-cloudinit"


def cloud_init_secret(
    instance: dict[str, Any], project: str, keys: list[str], given: str | None, plan: Plan
) -> dict[str, Any]:
    """The user data lives here, never in the VirtualMachine in clear text."""
    data = {USERDATA_KEY: user_data(keys, given)}
    network = network_data(instance, plan)
    if network is not None:
        data[NETWORKDATA_KEY] = network
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": children.child_metadata(
            instance, project, secret_name(instance), instance["metadata"]["namespace"]
        ),
        "type": "Opaque",
        "stringData": data,
    }


def root_disk_name(instance: dict[str, Any]) -> str:
    return f"{instance['metadata']['name']}-root"


def _template_labels(instance: dict[str, Any], spec: InstanceSpec, plan: Plan) -> dict[str, str]:
    labels = {net_labels.INSTANCE: instance["metadata"]["name"]}
    # The Project's `default` group applies when none is named, as in Neutron.
    for group in spec.security_groups or ["default"]:
        labels[net_labels.security_group(group)] = ""
    for nic in plan.nics:
        if nic.type == "pod":
            labels.update(net_labels.on_network(nic.project, nic.name))
    if spec.server_group is not None:
        labels[SERVER_GROUP_LABEL] = spec.server_group.name
    return labels


def _affinity(spec: InstanceSpec) -> dict[str, Any]:
    affinity: dict[str, Any] = {}
    if spec.availability_zone:
        affinity["nodeAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": ZONE, "operator": "In", "values": [spec.availability_zone]}
                        ]
                    }
                ]
            }
        }
    group = spec.server_group
    if group is not None:
        term = {
            "labelSelector": {"matchLabels": {SERVER_GROUP_LABEL: group.name}},
            "topologyKey": HOSTNAME,
        }
        kind = "podAntiAffinity" if "anti" in group.policy else "podAffinity"
        if group.policy.startswith("soft-"):
            affinity[kind] = {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "podAffinityTerm": term}
                ]
            }
        else:
            affinity[kind] = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    return affinity


def mac_address(instance: dict[str, Any], interface: str) -> str:
    """A stable, locally administered unicast MAC for one interface, so cloud-init network
    data can name the interface it configures."""
    meta = instance["metadata"]
    digest = hashlib.sha256(f"{meta['namespace']}/{meta['name']}/{interface}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def _addressed(plan: Plan) -> bool:
    return any(nic.address for nic in plan.nics)


def _networking(
    instance: dict[str, Any], plan: Plan
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """VM interfaces and networks: the pod network first (masquerade), then one Multus
    interface per bridge/vlan Network. pod-type Networks are isolation on the pod
    network itself, so they add labels, not interfaces. With ostack-allocated addresses
    the MACs are fixed, for cloud-init's network data to match on."""
    fixed_macs = _addressed(plan)
    interfaces: list[dict[str, Any]] = [{"name": "default", "masquerade": {}}]
    networks: list[dict[str, Any]] = [{"name": "default", "pod": {}}]
    for nic in plan.nics:
        if nic.type == "pod":
            continue
        interfaces.append({"name": nic.name, "bridge": {}})
        networks.append(
            {"name": nic.name, "multus": {"networkName": f"{nic.namespace}/{nic.name}"}}
        )
    if fixed_macs:
        for interface in interfaces:
            interface["macAddress"] = mac_address(instance, interface["name"])
    return interfaces, networks


def network_data(instance: dict[str, Any], plan: Plan) -> str | None:
    """cloud-init network config (version 2) giving the guest its allocated addresses, as
    OpenStack's config drive does. The pod interface keeps DHCP and the default route;
    a secondary network gets its address without a default route, so two gateways never
    compete."""
    if not _addressed(plan):
        return None
    ethernets: dict[str, Any] = {
        "default": {"match": {"macaddress": mac_address(instance, "default")}, "dhcp4": True}
    }
    for nic in plan.nics:
        if nic.type == "pod":
            continue
        entry: dict[str, Any] = {"match": {"macaddress": mac_address(instance, nic.name)}}
        if nic.address:
            entry["addresses"] = [f"{nic.address}/{nic.prefix_length}"]
        else:
            entry["dhcp4"] = False
        if nic.dns:
            entry["nameservers"] = {"addresses": list(nic.dns)}
        if nic.mtu:
            entry["mtu"] = nic.mtu
        ethernets[nic.name] = entry
    return yaml.safe_dump({"version": 2, "ethernets": ethernets}, sort_keys=False)


def virtual_machine(
    instance: dict[str, Any], project: str, spec: InstanceSpec, plan: Plan
) -> dict[str, Any]:
    name, namespace = instance["metadata"]["name"], instance["metadata"]["namespace"]
    meta = children.child_metadata(instance, project, name, namespace)
    if spec.metadata:
        # Nova metadata keys need not be valid annotation names: one JSON annotation.
        meta["annotations"] = {METADATA_ANNOTATION: json.dumps(spec.metadata, sort_keys=True)}
    interfaces, networks = _networking(instance, plan)
    disks = [
        {"name": "root", "bootOrder": 1, "disk": {"bus": "virtio"}},
        {"name": "cloudinit", "disk": {"bus": "virtio"}},
    ]
    if plan.boot.volume_pvc is not None:
        root_volume = {"name": "root", "persistentVolumeClaim": {"claimName": plan.boot.volume_pvc}}
    else:
        root_volume = {"name": "root", "dataVolume": {"name": root_disk_name(instance)}}
    cloud_init: dict[str, Any] = {"secretRef": {"name": secret_name(instance)}}
    if _addressed(plan):
        cloud_init["networkDataSecretRef"] = {"name": secret_name(instance)}
    volumes = [root_volume, {"name": "cloudinit", "cloudInitNoCloud": cloud_init}]
    for volume in plan.attached:
        # Hot-plugged disks are on the SCSI bus; a multiattach Volume is a shareable disk.
        disk: dict[str, Any] = {"name": f"volume-{volume.name}", "disk": {"bus": "scsi"}}
        if volume.shareable:
            disk["shareable"] = True
        disks.append(disk)
        volumes.append(
            {
                "name": f"volume-{volume.name}",
                "persistentVolumeClaim": {"claimName": volume.claim, "hotpluggable": True},
            }
        )
    domain: dict[str, Any] = {"devices": {"disks": disks, "interfaces": interfaces}}
    if spec.resources is not None:
        domain["cpu"] = {"sockets": spec.resources.cpu, "cores": 1, "threads": 1}
        domain["memory"] = {"guest": spec.resources.memory}
    template_spec: dict[str, Any] = {
        "domain": domain,
        "networks": networks,
        "volumes": volumes,
    }
    affinity = _affinity(spec)
    if affinity:
        template_spec["affinity"] = affinity
    vm_spec: dict[str, Any] = {
        "runStrategy": "Halted" if spec.shelved else RUN_STRATEGY[spec.power_state],
        "template": {
            "metadata": {
                "labels": {
                    **children.child_labels(instance, project),
                    **_template_labels(instance, spec, plan),
                },
                "annotations": {SIZE_ANNOTATION: size_id(plan.size)},
            },
            "spec": template_spec,
        },
    }
    if plan.size.flavor is not None:
        vm_spec["instancetype"] = {
            "kind": "VirtualMachineClusterInstancetype",
            "name": plan.size.flavor,
        }
    if plan.boot.preference is not None:
        vm_spec["preference"] = {"kind": "VirtualMachinePreference", "name": plan.boot.preference}
    if plan.boot.image_name is not None:
        vm_spec["dataVolumeTemplates"] = [
            {
                "metadata": {"name": root_disk_name(instance)},
                "spec": {
                    "sourceRef": {
                        "kind": "DataSource",
                        "namespace": plan.boot.image_namespace,
                        "name": plan.boot.image_name,
                    },
                    "storage": {
                        "resources": {
                            "requests": {
                                "storage": bytes_quantity(
                                    root_disk_size(spec, plan.size, plan.boot)
                                )
                            }
                        }
                    },
                },
            }
        ]
    return {"apiVersion": KUBEVIRT, "kind": "VirtualMachine", "metadata": meta, "spec": vm_spec}


def preference_copy(instance: dict[str, Any], project: str, boot: Boot) -> dict[str, Any] | None:
    """This Instance's copy of another Project's image preference, owned by the Instance."""
    if boot.preference is None or boot.preference_spec is None:
        return None
    return {
        "apiVersion": "instancetype.kubevirt.io/v1beta1",
        "kind": "VirtualMachinePreference",
        "metadata": children.child_metadata(
            instance, project, boot.preference, instance["metadata"]["namespace"]
        ),
        "spec": boot.preference_spec,
    }


MAX_FLOATING_PORTS = 100
"""A Service lists its ports one by one; wider ranges are cut here (and said so)."""


def floating_ports(rules: list[Any]) -> list[tuple[str, int]]:
    """(protocol, port) the Instance's groups let in with a protocol and ports: what a
    floating address can publish, the lowest MAX_FLOATING_PORTS of them. Rules for any
    protocol or any port have no Service form."""
    found: set[tuple[str, int]] = set()
    for rule in rules:
        if rule.direction != "ingress" or rule.protocol not in ("tcp", "udp", "sctp"):
            continue
        if rule.port_range_min is None:
            continue
        last = min(
            rule.port_range_max or rule.port_range_min, rule.port_range_min + MAX_FLOATING_PORTS
        )
        found.update((rule.protocol.upper(), port) for port in range(rule.port_range_min, last + 1))
    return sorted(found)[:MAX_FLOATING_PORTS]


def floating_name(instance: dict[str, Any]) -> str:
    return f"{instance['metadata']['name']}-floating"


def floating_service(
    instance: dict[str, Any], project: str, network: str, ports: list[tuple[str, int]]
) -> dict[str, Any]:
    """Neutron's floating IP as a LoadBalancer Service in front of the Instance's pod.
    `Local` traffic policy keeps the client's address, so the groups' CIDR rules still
    decide who gets in."""
    meta = children.child_metadata(
        instance, project, floating_name(instance), instance["metadata"]["namespace"]
    )
    meta["annotations"] = {"network.ostack.dev/external-network": network}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "selector": {net_labels.INSTANCE: instance["metadata"]["name"]},
            "ports": [
                {
                    "name": f"{proto.lower()}-{port}",
                    "protocol": proto,
                    "port": port,
                    "targetPort": port,
                }
                for proto, port in ports
            ],
        },
    }
