"""Neutron's IP address management for one Network, as pure functions: which addresses a
subnet hands out, whether a fixed IP may be taken, which free address to try next, and
how full each subnet is. The allocations themselves are IPAllocation objects (see
allocations.py); nothing here does I/O."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from operators.network.api import NetworkSpec, Subnet

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressRange = tuple[Address, Address]


def gateway(subnet: Subnet) -> Address:
    """The gateway: the given one, else the subnet's first host address (Neutron's default)."""
    network = ipaddress.ip_network(subnet.cidr)
    if subnet.gateway is not None:
        return ipaddress.ip_address(subnet.gateway)
    return network.network_address + 1


def pools(subnet: Subnet) -> list[AddressRange]:
    """The ranges automatic allocation draws from: the given pools, else every host
    address of the subnet but the gateway (Neutron's default pool)."""
    if subnet.allocation_pools:
        return [
            (ipaddress.ip_address(p.start), ipaddress.ip_address(p.end))
            for p in subnet.allocation_pools
        ]
    network = ipaddress.ip_network(subnet.cidr)
    first, last = _host_bounds(network)
    gw = gateway(subnet)
    if not first <= gw <= last:
        return [(first, last)]
    ranges = [(first, gw - 1), (gw + 1, last)]
    return [(a, b) for a, b in ranges if a <= b]


def _host_bounds(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> AddressRange:
    """The first and last addresses a host may have: not the network address, and for
    IPv4 not the broadcast address either (a /31 or /32 has no such reservations)."""
    if network.num_addresses <= 2:
        return network.network_address, network.broadcast_address
    last = network.broadcast_address - 1 if network.version == 4 else network.broadcast_address
    return network.network_address + 1, last


def pool_size(subnet: Subnet) -> int:
    return sum(int(end) - int(start) + 1 for start, end in pools(subnet))


def normal(text: str) -> str:
    """An address as Python writes it (IPv6 compressed, lower case)."""
    return str(ipaddress.ip_address(text))


def fixed_ip_problem(spec: NetworkSpec, network: str, text: str) -> str | None:
    """Why `text` cannot be a fixed IP on the Network, or None. Like Neutron, a fixed IP
    may be any host address of a subnet, in a pool or not, except the gateway."""
    address = ipaddress.ip_address(text)
    for subnet in spec.subnets:
        net = ipaddress.ip_network(subnet.cidr)
        if address.version != net.version or address not in net:
            continue
        first, last = _host_bounds(net)
        if not first <= address <= last:
            return f"{text} is the network or broadcast address of subnet {subnet.cidr}"
        if address == gateway(subnet):
            return f"{text} is the gateway of subnet {subnet.cidr} on Network {network}"
        return None
    cidrs = ", ".join(s.cidr for s in spec.subnets) or "none"
    return f"{text} is not in any subnet of Network {network} (subnets: {cidrs})"


def subnet_of(spec: NetworkSpec, text: str) -> Subnet | None:
    address = ipaddress.ip_address(text)
    return next(
        (
            s
            for s in spec.subnets
            if ipaddress.ip_network(s.cidr).version == address.version
            and address in ipaddress.ip_network(s.cidr)
        ),
        None,
    )


def candidates(subnet: Subnet, used: Iterable[str], seed: str) -> Iterator[str]:
    """Free pool addresses in the order one holder tries them: from a point derived from
    `seed` (the Instance's uid) round the pools, so that many Instances allocating at once
    mostly try different addresses first instead of all racing for the lowest one."""
    taken = {ipaddress.ip_address(u) for u in used}
    ranges = pools(subnet)
    size = sum(int(end) - int(start) + 1 for start, end in ranges)
    if size == 0:
        return
    offset = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % size
    for step in range(size):
        address = _nth(ranges, (offset + step) % size)
        if address not in taken:
            yield str(address)


def _nth(ranges: list[AddressRange], index: int) -> Address:
    for start, end in ranges:
        count = int(end) - int(start) + 1
        if index < count:
            return start + index
        index -= count
    raise IndexError(index)


@dataclass(frozen=True)
class Usage:
    cidr: str
    name: str | None
    used: int
    free: int


def usage(spec: NetworkSpec, allocated: Iterable[str]) -> list[Usage]:
    """Per subnet: addresses allocated, and pool addresses still free."""
    addresses = [ipaddress.ip_address(a) for a in allocated]
    result = []
    for subnet in spec.subnets:
        net = ipaddress.ip_network(subnet.cidr)
        mine = [a for a in addresses if a.version == net.version and a in net]
        in_pools = sum(1 for a in mine if any(s <= a <= e for s, e in pools(subnet)))
        result.append(Usage(subnet.cidr, subnet.name, len(mine), pool_size(subnet) - in_pools))
    return result


def allocation_name(network: str, address: str) -> str:
    """The IPAllocation's name: one object name per (Network, address), so the apiserver
    refuses a second holder. IPv6 addresses are written out in full, as names cannot
    start with or repeat the separator `::` would become."""
    parsed = ipaddress.ip_address(address)
    text = parsed.exploded if parsed.version == 6 else str(parsed)
    return f"{network}.{text.replace('.', '-').replace(':', '-')}"


def overlapping_subnets(spec: NetworkSpec) -> str | None:
    """Two subnets of one Network may not overlap (Neutron refuses it too)."""
    networks = [ipaddress.ip_network(s.cidr) for s in spec.subnets]
    for i, a in enumerate(networks):
        for b in networks[i + 1 :]:
            if a.version == b.version and a.overlaps(b):
                return f"subnets {a} and {b} overlap"
    return None
