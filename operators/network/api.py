"""Neutron's API: Networks with their subnets, and SecurityGroups."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, model_validator

from operators.common.kinds import AGE, PHASE, READY, Column, Kind
from operators.common.refs import ProjectRef
from operators.common.schema import (
    DNS_LABEL_PATTERN,
    LIST_SET,
    ApiModel,
    Name,
    Rule,
    count_set,
    exactly_one,
)
from operators.common.status import Status

GROUP = "network.ostack.dev"

IPText = Annotated[str, Field(max_length=45)]
CIDR_CEL = "isCIDR({0}) && cidr({0}) == cidr({0}).masked()"
CIDR_MESSAGE = "must be a network address with a prefix length, such as 10.20.0.0/24"


def is_network(text: str) -> bool:
    """The Python twin of CIDR_CEL: a CIDR whose host bits are zero."""
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError:
        return False
    return True


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _in(cidr: str, ip: str) -> bool:
    return is_network(cidr) and is_ip(ip) and ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


class AllocationPool(ApiModel):
    """A range of addresses handed out to Instances."""

    start: IPText
    """First address of the range."""
    end: IPText
    """Last address of the range."""

    @model_validator(mode="after")
    def _ordered(self) -> AllocationPool:
        # CEL's IP library cannot order addresses, so the apiserver checks only that both
        # ends are in the subnet; the order is checked here, in admission and reconcile.
        if is_ip(self.start) and is_ip(self.end):
            start, end = ipaddress.ip_address(self.start), ipaddress.ip_address(self.end)
            if start.version != end.version or start > end:
                raise ValueError(f"allocation pool {self.start}-{self.end}: start is after end")
        return self


class Subnet(ApiModel):
    """An IP subnet of the Network."""

    rules = (
        Rule(
            cel=CIDR_CEL.format("self.cidr"),
            message=f"subnet cidr {CIDR_MESSAGE}",
            check=lambda s: is_network(s.cidr),
        ),
        Rule(
            cel="!has(self.gateway) || (isIP(self.gateway) && isCIDR(self.cidr)"
            " && cidr(self.cidr).containsIP(self.gateway))",
            message="gateway must be an address inside the subnet's cidr",
            check=lambda s: s.gateway is None or _in(s.cidr, s.gateway),
        ),
        Rule(
            cel="!has(self.allocationPools) || self.allocationPools.all(p, isIP(p.start)"
            " && isIP(p.end) && isCIDR(self.cidr) && cidr(self.cidr).containsIP(p.start)"
            " && cidr(self.cidr).containsIP(p.end))",
            message="allocation pools must be ranges of addresses inside the subnet's cidr",
            check=lambda s: all(
                _in(s.cidr, p.start) and _in(s.cidr, p.end) for p in s.allocation_pools
            ),
        ),
        Rule(
            cel="!has(self.dnsNameservers) || self.dnsNameservers.all(x, isIP(x))",
            message="dnsNameservers must be IP addresses",
            check=lambda s: all(is_ip(x) for x in s.dns_nameservers),
        ),
    )

    name: Name | None = None
    """A name for the subnet, unique in the Network."""
    cidr: str = Field(max_length=49)
    """The subnet's range, e.g. `10.20.0.0/24`."""
    gateway: IPText | None = None
    """The gateway address; the first address of the range when unset."""
    allocation_pools: list[AllocationPool] = Field(default_factory=list, max_length=16)
    """Ranges Instances get addresses from; the whole subnet but the gateway when empty."""
    dns_nameservers: list[IPText] = Field(default_factory=list, max_length=8)
    """DNS servers handed to Instances."""


class Peer(ApiModel):
    """A source of traffic allowed into the Network."""

    rules = (
        Rule(
            cel=exactly_one("network", "project", "cidr"),
            message="a peer is exactly one of network, project or cidr",
            check=lambda p: count_set(p, "network", "project", "cidr") == 1,
        ),
        Rule(
            cel="!has(self.cidr) || " + CIDR_CEL.format("self.cidr"),
            message=f"peer cidr {CIDR_MESSAGE}",
            check=lambda p: p.cidr is None or is_network(p.cidr),
        ),
    )

    network: ProjectRef | None = None
    """Instances on another Network (of this or another Project)."""
    project: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL_PATTERN)
    """Everything in another Project."""
    cidr: str | None = Field(default=None, max_length=49)
    """Addresses outside the cluster, e.g. `192.0.2.0/24`."""


class NetworkSpec(ApiModel):
    """A tenant network: isolation on the pod network, or a secondary L2 network."""

    rules = (
        Rule(
            cel="(self.type == 'vlan') == has(self.vlanId)",
            message="vlanId is required for type vlan and only allowed there",
            check=lambda s: (s.type == "vlan") == (s.vlan_id is not None),
        ),
        Rule(
            cel="self.type == oldSelf.type",
            message="a Network's type cannot change; create a new Network",
            transition=lambda old, new: old.type == new.type,
        ),
        Rule(
            cel="self.type != 'pod' || !has(self.physicalNetwork)",
            message="physicalNetwork is for bridge and vlan networks",
            check=lambda s: s.type != "pod" or s.physical_network is None,
        ),
    )

    type: Literal["pod", "bridge", "vlan"] = "pod"
    """`pod`: Instances share the cluster's pod network, isolated by NetworkPolicy.
    `bridge` / `vlan`: a secondary L2 network (Multus) on a host bridge, tagged with
    `vlanId` for vlan."""
    subnets: list[Subnet] = Field(default_factory=list, max_length=8)
    """IP subnets; fixed IPs and (for bridge/vlan) addresses come from them."""
    vlan_id: int | None = Field(default=None, ge=1, le=4094)
    """The VLAN id of a `vlan` network (Neutron's segmentation id)."""
    physical_network: str | None = Field(default=None, max_length=15)
    """The Linux bridge on each node that carries a bridge/vlan network (Neutron's
    physical network); the operator's default bridge when unset."""
    mtu: int | None = Field(default=None, ge=576, le=9216)
    """The interface MTU for bridge/vlan networks."""
    shared: bool = False
    """Other Projects may attach Instances to the Network."""
    external: bool = False
    """The Network carries floating (externally reachable) addresses."""
    allow_from: list[Peer] = Field(default_factory=list, max_length=64)
    """Traffic allowed in besides the Network's own members: other Networks, Projects or
    CIDRs."""


class SubnetStatus(ApiModel):
    """Address usage of one subnet."""

    cidr: str
    """The subnet's range."""
    name: str | None = None
    """The subnet's name."""
    used: int | None = None
    """Addresses allocated."""
    free: int | None = None
    """Addresses left in the allocation pools."""


class NetworkStatus(Status):
    """Observed state of a Network."""

    phase: Literal["BUILD", "ACTIVE", "DOWN", "ERROR"] | None = None
    """BUILD, ACTIVE, DOWN or ERROR."""
    subnets: list[SubnetStatus] | None = Field(default=None, max_length=8)
    """Address usage per subnet."""
    network_attachment_definition: str | None = None
    """The Multus NetworkAttachmentDefinition of a bridge/vlan network."""


NETWORK = Kind(
    group=GROUP,
    kind="Network",
    doc="A Neutron network: NetworkPolicy isolation on the pod network, or a Multus"
    " secondary L2 network, with subnets and fixed-IP allocation.",
    plural="networks",
    short_names=("net",),
    spec=NetworkSpec,
    status=NetworkStatus,
    columns=(
        PHASE,
        READY,
        Column("Type", ".spec.type", description="pod, bridge or vlan"),
        Column("Subnet", ".spec.subnets[0].cidr", description="First subnet"),
        Column("Shared", ".spec.shared", "boolean", priority=1),
        AGE,
    ),
)


class SecurityGroupRule(ApiModel):
    """A rule allowing traffic; anything no rule allows is refused."""

    rules = (
        Rule(
            cel="!has(self.protocol) || self.protocol != 'icmp'",
            message="protocol icmp cannot be expressed as a Kubernetes NetworkPolicy, which"
            " filters TCP, UDP and SCTP only; leave protocol out to allow all traffic",
            check=lambda r: r.protocol != "icmp",
        ),
        Rule(
            cel="(!has(self.portRangeMin) && !has(self.portRangeMax))"
            " || (has(self.protocol) && self.protocol in ['tcp', 'udp', 'sctp'])",
            message="port ranges need protocol tcp, udp or sctp",
            check=lambda r: (
                (r.port_range_min is None and r.port_range_max is None)
                or r.protocol in ("tcp", "udp", "sctp")
            ),
        ),
        Rule(
            cel="!has(self.portRangeMax)"
            " || (has(self.portRangeMin) && self.portRangeMin <= self.portRangeMax)",
            message="portRangeMax needs a portRangeMin that is not larger",
            check=lambda r: (
                r.port_range_max is None
                or (r.port_range_min is not None and r.port_range_min <= r.port_range_max)
            ),
        ),
        Rule(
            cel="!has(self.remoteCIDR) || !has(self.remoteGroup)",
            message="give remoteCIDR or remoteGroup, not both",
            check=lambda r: r.remote_cidr is None or r.remote_group is None,
        ),
        Rule(
            cel="!has(self.remoteCIDR) || " + CIDR_CEL.format("self.remoteCIDR"),
            message=f"remoteCIDR {CIDR_MESSAGE}",
            check=lambda r: r.remote_cidr is None or is_network(r.remote_cidr),
        ),
        Rule(
            cel="!has(self.remoteCIDR) || !isCIDR(self.remoteCIDR)"
            " || cidr(self.remoteCIDR).ip().family() == (self.ethertype == 'IPv6' ? 6 : 4)",
            message="remoteCIDR must be of the rule's ethertype (IPv4 or IPv6)",
            check=lambda r: (
                r.remote_cidr is None
                or not is_network(r.remote_cidr)
                or ipaddress.ip_network(r.remote_cidr).version == int(r.ethertype[-1])
            ),
        ),
    )

    direction: Literal["ingress", "egress"]
    """ingress (traffic to the Instances) or egress (traffic from them)."""
    ethertype: Literal["IPv4", "IPv6"] = "IPv4"
    """IPv4 or IPv6."""
    protocol: Literal["tcp", "udp", "sctp", "icmp"] | None = None
    """tcp, udp or sctp; any protocol when unset. (icmp is refused: NetworkPolicy cannot
    filter it.)"""
    port_range_min: int | None = Field(default=None, ge=1, le=65535)
    """First port; needs a protocol."""
    port_range_max: int | None = Field(default=None, ge=1, le=65535)
    """Last port; `portRangeMin` alone when unset."""
    remote_cidr: str | None = Field(default=None, alias="remoteCIDR", max_length=49)
    """Peer addresses, e.g. `0.0.0.0/0`."""
    remote_group: Name | None = None
    """A SecurityGroup of this Project whose Instances are the peers."""
    description: str | None = Field(default=None, max_length=255)
    """Free text."""


class SecurityGroupSpec(ApiModel):
    """Rules that allow traffic to and from the Instances in the group."""

    description: str | None = Field(default=None, max_length=255)
    """Free text describing the group."""
    rules_: list[SecurityGroupRule] = Field(default_factory=list, alias="rules", max_length=128)
    """The rules."""


class SecurityGroupStatus(Status):
    """Observed state of a SecurityGroup."""

    network_policies: list[str] | None = Field(
        default=None, max_length=64, json_schema_extra=LIST_SET
    )
    """The NetworkPolicies implementing the rules: one per network its Instances are on."""
    members: int | None = None
    """Instances in the group."""


SECURITY_GROUP = Kind(
    group=GROUP,
    kind="SecurityGroup",
    doc="A Neutron security group: ingress and egress rules, enforced as NetworkPolicies"
    " on the Instances that name it.",
    plural="securitygroups",
    short_names=("sg", "secgroup"),
    spec=SecurityGroupSpec,
    status=SecurityGroupStatus,
    columns=(
        READY,
        Column("Rules", ".spec.rules[*].direction", description="Rule directions"),
        Column("Members", ".status.members", "integer", description="Instances in it"),
        AGE,
    ),
)


class Holder(ApiModel):
    """The Instance an address is allocated to."""

    namespace: str = Field(max_length=63, pattern=DNS_LABEL_PATTERN)
    """The Instance's namespace (another Project's, on a shared Network)."""
    name: Name
    """The Instance's name."""
    uid: str = Field(max_length=36)
    """The Instance's uid: a new Instance of the same name is a different holder."""


class IPAllocationSpec(ApiModel):
    """One address of a Network, held by one Instance. The object's name is made of the
    Network's name and the address, so the apiserver itself refuses a second holder."""

    rules = (
        Rule(
            cel="isIP(self.address)",
            message="address must be an IPv4 or IPv6 address",
            check=lambda a: is_ip(a.address),
        ),
        Rule(
            cel="self == oldSelf",
            message="an allocation is never changed: release it and allocate anew",
            transition=lambda old, new: old == new,
        ),
    )

    network: Name
    """The Network, in the allocation's namespace."""
    address: IPText
    """The allocated address."""
    fixed: bool = False
    """The Instance asked for this address (`fixedIP`) rather than any from the pools."""
    holder: Holder
    """The Instance holding the address."""


class IPAllocationStatus(Status):
    """Allocations have no observed state of their own (no Ready condition): the Network
    counts them in its status."""


IP_ALLOCATION = Kind(
    group=GROUP,
    kind="IPAllocation",
    doc="An address of a Network held by an Instance (Neutron's fixed IP on a port);"
    " written by ostack only, and released when the Instance goes.",
    plural="ipallocations",
    short_names=("ipalloc",),
    record=True,
    spec=IPAllocationSpec,
    status=IPAllocationStatus,
    columns=(
        Column("Network", ".spec.network", description="The Network"),
        Column("Address", ".spec.address", description="The address"),
        Column("Instance", ".spec.holder.name", description="The holder"),
        Column("Holder-Namespace", ".spec.holder.namespace", priority=1),
        AGE,
    ),
)

KINDS = (NETWORK, SECURITY_GROUP, IP_ALLOCATION)
