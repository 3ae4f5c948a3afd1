"""The network service's pure parts: address management, the attachment definition, and
the NetworkPolicies SecurityGroups and Networks become."""

from __future__ import annotations

import json

import pytest

from operators.network import builders, ipam, policies
from operators.network.api import NetworkSpec, SecurityGroupRule, SecurityGroupSpec, Subnet

GROUP = {
    "apiVersion": "network.ostack.dev/v1alpha1",
    "kind": "SecurityGroup",
    "metadata": {"name": "web", "namespace": "demo", "uid": "g-1"},
}
NETWORK = {
    "apiVersion": "network.ostack.dev/v1alpha1",
    "kind": "Network",
    "metadata": {"name": "lan", "namespace": "demo", "uid": "n-1"},
}


def subnet(**fields) -> Subnet:
    return Subnet.model_validate({"cidr": "10.30.0.0/29", **fields})


# --- IPAM --------------------------------------------------------------------------------------


def test_default_pool_is_every_host_address_but_the_gateway() -> None:
    assert [(str(a), str(b)) for a, b in ipam.pools(subnet())] == [("10.30.0.2", "10.30.0.6")]
    assert ipam.pool_size(subnet()) == 5
    middle = subnet(gateway="10.30.0.4")
    assert [(str(a), str(b)) for a, b in ipam.pools(middle)] == [
        ("10.30.0.1", "10.30.0.3"),
        ("10.30.0.5", "10.30.0.6"),
    ]


def test_given_pools_are_used_as_written() -> None:
    pooled = subnet(allocationPools=[{"start": "10.30.0.3", "end": "10.30.0.4"}])
    assert ipam.pool_size(pooled) == 2
    assert sorted(ipam.candidates(pooled, ["10.30.0.3"], "any")) == ["10.30.0.4"]


def test_candidates_skip_used_addresses_and_start_where_the_seed_says() -> None:
    s = subnet()
    everything = set(ipam.candidates(s, [], "a"))
    assert everything == {f"10.30.0.{i}" for i in range(2, 7)}
    assert list(ipam.candidates(s, sorted(everything), "a")) == []
    firsts = {next(ipam.candidates(s, [], f"uid-{i}")) for i in range(40)}
    assert len(firsts) > 1, "every holder starting at one address makes them all race for it"


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("10.30.0.5", None),
        ("10.30.0.1", "is the gateway of subnet 10.30.0.0/29"),
        ("10.30.0.0", "is the network or broadcast address"),
        ("10.30.0.7", "is the network or broadcast address"),
        ("10.99.0.5", "is not in any subnet of Network lan (subnets: 10.30.0.0/29)"),
        ("fd00::5", "is not in any subnet"),
    ],
)
def test_fixed_ip_must_be_a_host_address_of_a_subnet(address: str, problem: str | None) -> None:
    spec = NetworkSpec.model_validate({"type": "bridge", "subnets": [{"cidr": "10.30.0.0/29"}]})
    found = ipam.fixed_ip_problem(spec, "lan", address)
    assert (found is None) if problem is None else (problem in found)


def test_usage_counts_allocated_and_free_per_subnet() -> None:
    spec = NetworkSpec.model_validate(
        {"type": "bridge", "subnets": [{"cidr": "10.30.0.0/29"}, {"cidr": "fd00::/125"}]}
    )
    usage = ipam.usage(spec, ["10.30.0.2", "10.30.0.3", "fd00::2"])
    assert [(u.used, u.free) for u in usage] == [(2, 3), (1, 5)]


def test_allocation_names_are_valid_object_names_for_both_families() -> None:
    assert ipam.allocation_name("lan", "10.30.0.5") == "lan.10-30-0-5"
    assert ipam.allocation_name("lan", "fd00::5") == "lan.fd00-0000-0000-0000-0000-0000-0000-0005"
    assert ipam.allocation_name("lan", "FD00::5") == ipam.allocation_name("lan", "fd00::0:5")


def test_overlapping_subnets_are_found() -> None:
    spec = NetworkSpec.model_validate(
        {"subnets": [{"cidr": "10.0.0.0/16"}, {"cidr": "10.0.3.0/24"}, {"cidr": "fd00::/64"}]}
    )
    assert ipam.overlapping_subnets(spec) == "subnets 10.0.0.0/16 and 10.0.3.0/24 overlap"


# --- the attachment definition ----------------------------------------------------------------


def test_vlan_network_is_a_bridge_cni_with_the_tag_and_no_second_allocator() -> None:
    spec = NetworkSpec.model_validate(
        {
            "type": "vlan",
            "vlanId": 42,
            "physicalNetwork": "br-data",
            "mtu": 1450,
            "subnets": [{"cidr": "10.30.0.0/24", "dnsNameservers": ["10.30.0.53"]}],
        }
    )
    nad = builders.attachment_definition(NETWORK, "demo", spec)
    assert nad["metadata"]["ownerReferences"][0]["uid"] == "n-1"
    config = json.loads(nad["spec"]["config"])
    assert {k: config[k] for k in ("type", "bridge", "vlan", "mtu", "ipam")} == {
        "type": "bridge",
        "bridge": "br-data",
        "vlan": 42,
        "mtu": 1450,
        "ipam": {},
    }
    assert config["ostack"]["subnets"][0]["allocationPools"] == [
        {"start": "10.30.0.2", "end": "10.30.0.254"}
    ]
    assert builders.attachment_definition(NETWORK, "demo", NetworkSpec()) is None


# --- policies --------------------------------------------------------------------------------


def rule(**fields) -> SecurityGroupRule:
    return SecurityGroupRule.model_validate(fields)


ON_LAN = policies.Domain("demo", "private")
LAN_MEMBERS = {
    "podSelector": {
        "matchLabels": {"network.ostack.dev/name": "private", "network.ostack.dev/project": "demo"}
    }
}


def test_project_domain_reaches_its_namespace_and_outside() -> None:
    reach = policies.project_reach()
    peers = [policies.peer_object(p) for p in reach.peers]
    assert peers == [
        {"podSelector": {}},
        {"ipBlock": {"cidr": "0.0.0.0/0"}},
        {"ipBlock": {"cidr": "::/0"}},
    ]
    assert reach.selector == {
        "matchExpressions": [{"key": "network.ostack.dev/name", "operator": "DoesNotExist"}]
    }


def test_network_reach_is_members_and_allow_from() -> None:
    spec = NetworkSpec.model_validate(
        {
            "allowFrom": [
                {"network": {"name": "dmz"}},
                {"network": {"name": "ops", "project": "infra"}},
                {"project": "monitoring"},
                {"project": "demo"},
                {"cidr": "192.0.2.0/24"},
            ]
        }
    )
    reach = policies.network_reach(ON_LAN, spec, "demo")
    every_project = {"matchExpressions": [{"key": "ostack.dev/project", "operator": "Exists"}]}
    assert [policies.peer_object(p) for p in reach.peers] == [
        LAN_MEMBERS,
        {
            "namespaceSelector": every_project,
            "podSelector": {
                "matchLabels": {
                    "network.ostack.dev/name": "dmz",
                    "network.ostack.dev/project": "demo",
                }
            },
        },
        {
            "namespaceSelector": every_project,
            "podSelector": {
                "matchLabels": {
                    "network.ostack.dev/name": "ops",
                    "network.ostack.dev/project": "infra",
                }
            },
        },
        {"namespaceSelector": {"matchLabels": {"ostack.dev/project": "monitoring"}}},
        {"podSelector": {}},
        {"ipBlock": {"cidr": "192.0.2.0/24"}},
    ]
    assert reach.selector == {"matchLabels": LAN_MEMBERS["podSelector"]["matchLabels"]}


def test_shared_network_members_are_found_in_every_project() -> None:
    reach = policies.network_reach(ON_LAN, NetworkSpec(shared=True), "other")
    assert policies.peer_object(reach.peers[0])["namespaceSelector"] == {
        "matchExpressions": [{"key": "ostack.dev/project", "operator": "Exists"}]
    }


def test_external_network_is_reachable_from_anywhere_and_a_gone_one_only_by_members() -> None:
    external = policies.network_reach(ON_LAN, NetworkSpec(external=True), "demo")
    assert [p.cidr for p in external.peers[1:]] == ["0.0.0.0/0", "::/0"]
    gone = policies.network_reach(ON_LAN, None, "demo")
    assert [policies.peer_object(p) for p in gone.peers] == [LAN_MEMBERS]


ON_PROJECT = policies.Domain()


def policy(rules: list[dict], domain=ON_PROJECT, spec=None, except_cidrs=()) -> dict:
    group_spec = SecurityGroupSpec.model_validate({"rules": rules})
    reach = (
        policies.network_reach(domain, spec, "demo") if domain.network else policies.project_reach()
    )
    return policies.security_group_policy(GROUP, group_spec, "demo", domain, reach, except_cidrs)


def test_policy_selects_the_groups_instances_on_one_domain() -> None:
    on_project = policy([])
    assert on_project["metadata"]["name"] == "securitygroup-web"
    assert on_project["spec"]["podSelector"] == {
        "matchLabels": {"securitygroup.ostack.dev/web": ""},
        "matchExpressions": [{"key": "network.ostack.dev/name", "operator": "DoesNotExist"}],
    }
    # No rules: nothing in, nothing out (no `ingress`/`egress` lists at all, never empty ones).
    assert on_project["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in on_project["spec"] and "egress" not in on_project["spec"]
    on_lan = policy([], ON_LAN, NetworkSpec())
    assert on_lan["metadata"]["name"] == "securitygroup-web.private"
    assert on_lan["spec"]["podSelector"] == {
        "matchLabels": {
            "securitygroup.ostack.dev/web": "",
            **LAN_MEMBERS["podSelector"]["matchLabels"],
        }
    }
    shared = policies.policy_name("web", policies.Domain("infra", "public"), "demo")
    assert shared == "securitygroup-web.infra.public"


def test_cidr_rule_is_narrowed_to_what_the_domain_reaches() -> None:
    tcp80 = {"direction": "ingress", "protocol": "tcp", "portRangeMin": 80}
    anywhere = policy([{**tcp80, "remoteCIDR": "0.0.0.0/0"}])
    assert anywhere["spec"]["ingress"] == [
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 80}]}
    ]
    lan = NetworkSpec.model_validate({"allowFrom": [{"cidr": "192.0.2.0/24"}]})
    narrowed = policy([{**tcp80, "remoteCIDR": "0.0.0.0/0"}], ON_LAN, lan)
    assert narrowed["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "192.0.2.0/24"}}]
    inside = policy([{**tcp80, "remoteCIDR": "192.0.2.128/25"}], ON_LAN, lan)
    assert inside["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "192.0.2.128/25"}}]
    # A CIDR the Network does not let in allows nothing: the rule is left out, because an
    # empty `from` would allow every source.
    disjoint = policy([{**tcp80, "remoteCIDR": "198.51.100.0/24"}], ON_LAN, lan)
    assert "ingress" not in disjoint["spec"]


def test_remote_group_rule_keeps_only_group_members_the_domain_reaches() -> None:
    from_db = {"direction": "ingress", "remoteGroup": "db"}
    on_project = policy([from_db])
    assert on_project["spec"]["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {"securitygroup.ostack.dev/db": ""}}}]}
    ]
    lan = NetworkSpec.model_validate(
        {"allowFrom": [{"network": {"name": "dmz"}}, {"project": "other"}, {"cidr": "10.0.0.0/8"}]}
    )
    on_lan = policy([from_db], ON_LAN, lan)
    assert on_lan["spec"]["ingress"][0]["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    **LAN_MEMBERS["podSelector"]["matchLabels"],
                    "securitygroup.ostack.dev/db": "",
                }
            }
        },
        {
            "podSelector": {
                "matchLabels": {
                    "network.ostack.dev/name": "dmz",
                    "network.ostack.dev/project": "demo",
                    "securitygroup.ostack.dev/db": "",
                }
            }
        },
    ]


def test_any_source_rule_allows_the_whole_reach_of_its_ethertype() -> None:
    v6 = policy([{"direction": "ingress", "ethertype": "IPv6", "protocol": "udp"}])
    assert v6["spec"]["ingress"] == [
        {
            "from": [{"podSelector": {}}, {"ipBlock": {"cidr": "::/0"}}],
            "ports": [{"protocol": "UDP"}],
        }
    ]


def test_port_ranges_and_egress_rules() -> None:
    body = policy(
        [
            {"direction": "ingress", "protocol": "tcp", "portRangeMin": 8000, "portRangeMax": 8080},
            {
                "direction": "egress",
                "protocol": "tcp",
                "portRangeMin": 443,
                "remoteCIDR": "0.0.0.0/0",
            },
            {"direction": "egress", "remoteGroup": "db"},
            {"direction": "egress"},
        ]
    )
    assert body["spec"]["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": 8000, "endPort": 8080}
    ]
    assert body["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]},
        {"to": [{"podSelector": {"matchLabels": {"securitygroup.ostack.dev/db": ""}}}]},
        {},
    ]


def test_cluster_ranges_are_cut_out_of_ip_blocks() -> None:
    body = policy(
        [{"direction": "ingress", "remoteCIDR": "0.0.0.0/0"}],
        except_cidrs=("10.244.0.0/16", "10.96.0.0/12", "fd00::/48"),
    )
    assert body["spec"]["ingress"][0]["from"] == [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16", "10.96.0.0/12"]}}
    ]


def test_default_group_is_neutrons() -> None:
    group = policies.default_group("demo", "demo")
    spec = SecurityGroupSpec.model_validate(group["spec"])
    body = policies.security_group_policy(
        {**group, "metadata": {**group["metadata"], "uid": "d-1"}},
        spec,
        "demo",
        policies.Domain(),
        policies.project_reach(),
    )
    # Members reach each other (both families collapse into one pod rule); all egress.
    assert body["spec"]["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {"securitygroup.ostack.dev/default": ""}}}]}
    ]
    assert body["spec"]["egress"] == [{}]
