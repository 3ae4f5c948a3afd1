"""SecurityGroups and pod Networks as NetworkPolicies, as pure functions.

Neutron lets traffic in when the two ends can reach each other (they share a network, or
one is allowed from the other's) *and* a security group of the receiver allows it.
Kubernetes NetworkPolicies only ever add allowed traffic, so separate policies for the
Network and for each group would let anything one of them allows past the other. The
intersection is therefore computed here: one policy per (SecurityGroup, reach domain),
selecting the group's Instances on that domain, whose peers are the group's rules
narrowed to what that domain can reach.

A reach domain is a pod-type Network, or the Project itself for Instances on none:
- the Project: every pod of its namespace, and addresses outside the cluster;
- a Network: its members (in any Project, when shared), its `allowFrom` peers, and
  addresses outside the cluster when it is `external`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from operators.common import children
from operators.network import labels
from operators.network.api import NetworkSpec, SecurityGroupRule, SecurityGroupSpec

EVERYWHERE = ("0.0.0.0/0", "::/0")
ANY_PROJECT = "*"


@dataclass(frozen=True)
class Peer:
    """One source or destination: pods (by labels, in some namespaces) or a CIDR."""

    pods: tuple[tuple[str, str], ...] | None = None
    """Label pairs the pods carry (empty: any pod); None for a CIDR peer."""
    project: str | None = None
    """Whose namespace the pods are in: None for the policy's own, a Project's name, or
    ANY_PROJECT for every Project's namespace."""
    cidr: str | None = None


@dataclass(frozen=True)
class Domain:
    """Where an Instance's pod interface is: on a pod-type Network, or on its Project."""

    project: str = ""
    network: str = ""
    """Empty for the Project's own domain (the Instance is on no pod-type Network)."""


@dataclass(frozen=True)
class Reach:
    """Who may reach the Instances of one domain, before any security group applies."""

    peers: tuple[Peer, ...]
    selector: dict[str, Any] = field(default_factory=dict)
    """How the domain's pods are selected."""


def project_reach() -> Reach:
    return Reach(
        peers=(Peer(pods=()), *(Peer(cidr=c) for c in EVERYWHERE)),
        selector={"matchExpressions": [{"key": labels.NETWORK_NAME, "operator": "DoesNotExist"}]},
    )


def network_reach(domain: Domain, spec: NetworkSpec | None, own_project: str) -> Reach:
    """The members of the Network and what it allows in; a Network that is gone reaches
    only its remaining members."""
    member_labels = tuple(sorted(labels.on_network(domain.project, domain.network).items()))
    shared = spec is not None and spec.shared
    peers = [Peer(pods=member_labels, project=ANY_PROJECT if shared else None)]
    for allowed in spec.allow_from if spec is not None else []:
        if allowed.network is not None:
            project = allowed.network.project or domain.project
            pairs = labels.on_network(project, allowed.network.name).items()
            peers.append(Peer(pods=tuple(sorted(pairs)), project=ANY_PROJECT))
        elif allowed.project is not None:
            peers.append(Peer(pods=(), project=_scope(allowed.project, own_project)))
        elif allowed.cidr is not None:
            peers.append(Peer(cidr=allowed.cidr))
    if spec is not None and spec.external:
        peers += [Peer(cidr=c) for c in EVERYWHERE]
    return Reach(peers=tuple(dict.fromkeys(peers)), selector={"matchLabels": dict(member_labels)})


def _scope(project: str, own_project: str) -> str | None:
    return None if project == own_project else project


def _family(cidr: str) -> int:
    return ipaddress.ip_network(cidr).version


def _ethertype_family(rule: SecurityGroupRule) -> int:
    return 6 if rule.ethertype == "IPv6" else 4


def _narrow_cidr(wanted: str, reachable: str) -> str | None:
    """The intersection of two CIDRs, which is one of them or nothing."""
    a, b = ipaddress.ip_network(wanted), ipaddress.ip_network(reachable)
    if a.version != b.version:
        return None
    if a.subnet_of(b):  # type: ignore[arg-type]
        return str(a)
    if b.subnet_of(a):  # type: ignore[arg-type]
        return str(b)
    return None


def ingress_peers(rule: SecurityGroupRule, reach: Reach) -> list[Peer]:
    """The rule's sources narrowed to what the domain reaches."""
    family = _ethertype_family(rule)
    found: list[Peer] = []
    for peer in reach.peers:
        if peer.cidr is not None:
            if _family(peer.cidr) != family or rule.remote_group is not None:
                continue
            narrowed = _narrow_cidr(rule.remote_cidr, peer.cidr) if rule.remote_cidr else peer.cidr
            if narrowed is not None:
                found.append(Peer(cidr=narrowed))
        elif rule.remote_cidr is not None:
            continue  # a CIDR names addresses, which pod selectors cannot narrow to
        elif rule.remote_group is not None:
            # The remote group's Instances are in this namespace: only peers that can be
            # there keep them.
            if peer.project in (None, ANY_PROJECT):
                group = (labels.security_group(rule.remote_group), "")
                found.append(Peer(pods=tuple(sorted({*(peer.pods or ()), group}))))
        else:
            found.append(peer)
    return list(dict.fromkeys(found))


def egress_peers(rule: SecurityGroupRule) -> list[Peer]:
    """Egress is the sender's choice; whether the far end lets it in is its own policy."""
    if rule.remote_group is not None:
        return [Peer(pods=((labels.security_group(rule.remote_group), ""),))]
    if rule.remote_cidr is not None:
        return [Peer(cidr=rule.remote_cidr)]
    return []


def peer_object(peer: Peer, except_cidrs: tuple[str, ...] = ()) -> dict[str, Any]:
    """A NetworkPolicyPeer. `except_cidrs` (the cluster's pod and service ranges) are cut
    out of a CIDR peer, for CNIs that match pod addresses against ipBlocks."""
    if peer.cidr is not None:
        block: dict[str, Any] = {"cidr": peer.cidr}
        inside = [c for c in except_cidrs if _narrow_cidr(c, peer.cidr) == c and c != peer.cidr]
        if inside:
            block["except"] = inside
        return {"ipBlock": block}
    result: dict[str, Any] = {}
    if peer.project == ANY_PROJECT:
        result["namespaceSelector"] = {
            "matchExpressions": [{"key": children.PROJECT, "operator": "Exists"}]
        }
    elif peer.project is not None:
        result["namespaceSelector"] = {"matchLabels": {children.PROJECT: peer.project}}
    if peer.pods or "namespaceSelector" not in result:
        result["podSelector"] = {"matchLabels": dict(peer.pods)} if peer.pods else {}
    return result


def ports(rule: SecurityGroupRule) -> list[dict[str, Any]]:
    if rule.protocol is None:
        return []
    port: dict[str, Any] = {"protocol": rule.protocol.upper()}
    if rule.port_range_min is not None:
        port["port"] = rule.port_range_min
        if rule.port_range_max is not None and rule.port_range_max > rule.port_range_min:
            port["endPort"] = rule.port_range_max
    return [port]


def _rule_object(
    direction: str, peers: list[Peer], rule: SecurityGroupRule, except_cidrs: tuple[str, ...]
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if peers:
        body["from" if direction == "ingress" else "to"] = [
            peer_object(p, except_cidrs) for p in peers
        ]
    if ports(rule):
        body["ports"] = ports(rule)
    return body


def policy_name(group: str, domain: Domain, own_project: str) -> str:
    if not domain.network:
        return f"securitygroup-{group}"
    if domain.project == own_project:
        return f"securitygroup-{group}.{domain.network}"
    return f"securitygroup-{group}.{domain.project}.{domain.network}"


def security_group_policy(
    group: dict[str, Any],
    spec: SecurityGroupSpec,
    project: str,
    domain: Domain,
    reach: Reach,
    except_cidrs: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The NetworkPolicy for the group's Instances on one domain: ingress as the group's
    rules allow within the domain's reach, egress as they allow, nothing else."""
    name, namespace = group["metadata"]["name"], group["metadata"]["namespace"]
    ingress: list[dict[str, Any]] = []
    egress: list[dict[str, Any]] = []
    for rule in spec.rules_:
        if rule.direction == "ingress":
            peers = ingress_peers(rule, reach)
            if not peers:
                continue  # nothing it names is reachable; an empty `from` would mean everyone
            ingress.append(_rule_object("ingress", peers, rule, except_cidrs))
        else:
            egress.append(_rule_object("egress", egress_peers(rule), rule, except_cidrs))
    selector = {
        "matchLabels": {labels.security_group(name): "", **reach.selector.get("matchLabels", {})}
    }
    if "matchExpressions" in reach.selector:
        selector["matchExpressions"] = reach.selector["matchExpressions"]
    policy_spec: dict[str, Any] = {"podSelector": selector, "policyTypes": ["Ingress", "Egress"]}
    if ingress:
        policy_spec["ingress"] = _unique(ingress)
    if egress:
        policy_spec["egress"] = _unique(egress)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": children.child_metadata(
            group, project, policy_name(name, domain, project), namespace
        ),
        "spec": policy_spec,
    }


def _unique(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Neutron's default group repeats its rules for IPv4 and IPv6; where the family is not
    # expressible (pod peers, any destination) the two become one.
    seen: list[dict[str, Any]] = []
    for rule in rules:
        if rule not in seen:
            seen.append(rule)
    return seen


def default_group(namespace: str, project: str) -> dict[str, Any]:
    """A Project's `default` SecurityGroup, as Neutron creates it: members reach each
    other, everything may go out, nothing else comes in."""
    rules = [
        {"direction": "ingress", "ethertype": family, "remoteGroup": "default"}
        for family in ("IPv4", "IPv6")
    ] + [{"direction": "egress", "ethertype": family} for family in ("IPv4", "IPv6")]
    return {
        "apiVersion": "network.ostack.dev/v1alpha1",
        "kind": "SecurityGroup",
        "metadata": {
            "name": "default",
            "namespace": namespace,
            "labels": {children.MANAGED_BY: children.MANAGER, children.PROJECT: project},
        },
        "spec": {"description": "Default security group", "rules": rules},
    }
