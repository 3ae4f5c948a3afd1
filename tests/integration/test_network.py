"""Neutron on the real control plane: Networks, address allocation, SecurityGroups and the
NetworkPolicies they become, run by the real identity, image, compute and network
operators with the status simulator standing in for KubeVirt. Whether the policies
actually stop traffic needs a policy-enforcing CNI: that is the kind e2e suite's part."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client

from operators.common.kinds import VERSION
from operators.compute.api import INSTANCE
from operators.network.api import IP_ALLOCATION, NETWORK, SECURITY_GROUP
from tests.integration.test_compute import an_image, in_phase, instance, ready, server
from tests.support import Operator, eventually
from tests.support import create_object as make
from tests.support import patch_spec as patch
from tests.support import read_object as get

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
LAN_MEMBERS = {"network.ostack.dev/name": "private"}


@pytest.fixture(scope="module", autouse=True)
def operators(run_operator: Callable[..., Operator], simulator: object) -> None:
    for service in ("identity", "image", "compute", "network"):
        run_operator(service)


def network(api: client.ApiClient, ns: str, name: str) -> Obj:
    return get(api, NETWORK.group, VERSION, NETWORK.plural, ns, name) or {}


def group(api: client.ApiClient, ns: str, name: str) -> Obj:
    return get(api, SECURITY_GROUP.group, VERSION, SECURITY_GROUP.plural, ns, name) or {}


def policy(api: client.ApiClient, ns: str, name: str) -> Obj | None:
    try:
        found = client.NetworkingV1Api(api).read_namespaced_network_policy(name, ns)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return api.sanitize_for_serialization(found)


def allocations(api: client.ApiClient, ns: str) -> list[Obj]:
    return client.CustomObjectsApi(api).list_namespaced_custom_object(
        IP_ALLOCATION.group, VERSION, ns, IP_ALLOCATION.plural
    )["items"]


def address_on(api: client.ApiClient, ns: str, name: str, net: str) -> str | None:
    for entry in instance(api, ns, name).get("status", {}).get("addresses") or []:
        if entry["network"] == net and entry.get("ip"):
            return entry["ip"]
    return None


def refused_with(api: client.ApiClient, ns: str, name: str, text: str) -> str:
    def found() -> str | None:
        obj = in_phase(api, ns, name, "ERROR")
        message = ready(obj)["message"] if obj else ""
        return message if text in message else None

    return eventually(found, f"Instance {name} refused with {text!r}")


def bridge_network(api: client.ApiClient, ns: str, name: str = "lan", **subnet: Any) -> None:
    make(
        api,
        NETWORK,
        ns,
        name,
        {"type": "vlan", "vlanId": 100, "subnets": [{"cidr": "10.40.0.0/24", **subnet}]},
    )
    eventually(lambda: network(api, ns, name).get("status", {}).get("phase") == "ACTIVE", "ACTIVE")


# --- Networks --------------------------------------------------------------------------------


def test_a_vlan_network_becomes_a_bridge_attachment(api: client.ApiClient, project) -> None:
    ns = project()
    bridge_network(api, ns, dnsNameservers=["10.40.0.53"], gateway="10.40.0.1")
    nad = eventually(
        lambda: client.CustomObjectsApi(api).get_namespaced_custom_object(
            "k8s.cni.cncf.io", "v1", ns, "network-attachment-definitions", "lan"
        ),
        "the NetworkAttachmentDefinition",
    )
    config = json.loads(nad["spec"]["config"])
    assert (config["type"], config["vlan"], config["ipam"]) == ("bridge", 100, {})
    status = network(api, ns, "lan")["status"]
    assert status["networkAttachmentDefinition"] == "lan"
    assert status["subnets"] == [{"cidr": "10.40.0.0/24", "used": 0, "free": 253}]
    assert ready(network(api, ns, "lan"))["reason"] == "Succeeded"


def test_overlapping_subnets_are_an_error_that_can_be_fixed(api: client.ApiClient, project) -> None:
    ns = project()
    make(
        api,
        NETWORK,
        ns,
        "bad",
        {"type": "bridge", "subnets": [{"cidr": "10.0.0.0/16"}, {"cidr": "10.0.1.0/24"}]},
    )
    obj = eventually(
        lambda: (n := network(api, ns, "bad")).get("status", {}).get("phase") == "ERROR" and n,
        "ERROR",
    )
    assert ready(obj)["message"] == "subnets 10.0.0.0/16 and 10.0.1.0/24 overlap"
    patch(api, NETWORK, ns, "bad", {"subnets": [{"cidr": "10.0.0.0/16"}]})
    eventually(lambda: network(api, ns, "bad")["status"]["phase"] == "ACTIVE", "fixed")


# --- addresses -------------------------------------------------------------------------------


def test_fixed_ips_are_allocated_refused_when_taken_or_outside_and_released(
    api: client.ApiClient, project
) -> None:
    ns = project()
    an_image(api, ns)
    bridge_network(api, ns)
    make(api, INSTANCE, ns, "a", server(networks=[{"name": "lan", "fixedIP": "10.40.0.10"}]))
    eventually(lambda: address_on(api, ns, "a", "lan") == "10.40.0.10", "a's fixed IP")
    held = allocations(api, ns)
    assert [(a["metadata"]["name"], a["spec"]["holder"]["name"]) for a in held] == [
        ("lan.10-40-0-10", "a")
    ]
    vm = eventually(
        lambda: client.CustomObjectsApi(api).get_namespaced_custom_object(
            "kubevirt.io", "v1", ns, "virtualmachines", "a"
        ),
        "a's VM",
    )
    interfaces = vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    assert [i["name"] for i in interfaces] == ["default", "lan"]
    secret = client.CoreV1Api(api).read_namespaced_secret("a-cloudinit", ns)
    assert "networkdata" in secret.data

    make(api, INSTANCE, ns, "b", server(networks=[{"name": "lan", "fixedIP": "10.40.0.10"}]))
    message = refused_with(api, ns, "b", "already held")
    assert message == f"10.40.0.10 on Network lan is already held by Instance {ns}/a"
    make(api, INSTANCE, ns, "c", server(networks=[{"name": "lan", "fixedIP": "10.41.0.3"}]))
    assert "not in any subnet of Network lan" in refused_with(api, ns, "c", "not in any subnet")

    # Releasing: the address goes with its Instance, and the refused one can have it.
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        INSTANCE.group, VERSION, ns, INSTANCE.plural, "a"
    )
    eventually(lambda: not allocations(api, ns), "the address released")
    patch(api, INSTANCE, ns, "b", {"metadata": {"retry": "1"}})  # any spec change retries
    eventually(lambda: address_on(api, ns, "b", "lan") == "10.40.0.10", "b takes the address")
    eventually(lambda: network(api, ns, "lan")["status"]["subnets"][0]["used"] == 1, "used counted")


def test_fifty_instances_at_once_get_distinct_addresses_then_the_pool_is_exhausted(
    api: client.ApiClient, project
) -> None:
    ns = project()
    an_image(api, ns)
    pool = {"start": "10.40.0.100", "end": "10.40.0.149"}  # exactly 50 addresses
    bridge_network(api, ns, allocationPools=[pool])
    names = [f"vm-{i:02d}" for i in range(50)]
    with ThreadPoolExecutor(max_workers=10) as creating:
        list(
            creating.map(
                lambda n: make(api, INSTANCE, ns, n, server(networks=[{"name": "lan"}])), names
            )
        )

    def all_addressed() -> dict[str, str] | None:
        found = {n: address_on(api, ns, n, "lan") for n in names}
        return found if all(found.values()) else None

    addresses = eventually(all_addressed, "50 addresses", timeout=180)
    assert len(set(addresses.values())) == 50
    start, end = (ipaddress.ip_address(pool[k]) for k in ("start", "end"))
    assert all(start <= ipaddress.ip_address(a) <= end for a in addresses.values())
    assert len(allocations(api, ns)) == 50
    eventually(
        lambda: (
            network(api, ns, "lan")["status"]["subnets"][0]
            == {
                "cidr": "10.40.0.0/24",
                "used": 50,
                "free": 0,
            }
        ),
        "the subnet full",
    )
    make(api, INSTANCE, ns, "one-too-many", server(networks=[{"name": "lan"}]))
    message = refused_with(api, ns, "one-too-many", "no free address")
    assert message.startswith("Network lan has no free address left in its allocation pools")


def test_pod_networks_take_no_fixed_ip_and_an_instance_is_on_one(
    api: client.ApiClient, project
) -> None:
    ns = project()
    an_image(api, ns)
    for name in ("private", "other"):
        make(api, NETWORK, ns, name, {"type": "pod"})
    make(api, INSTANCE, ns, "x", server(networks=[{"name": "private", "fixedIP": "10.0.0.5"}]))
    assert "fixedIP is for bridge and vlan Networks" in refused_with(api, ns, "x", "pod network")
    make(api, INSTANCE, ns, "y", server(networks=[{"name": "private"}, {"name": "other"}]))
    assert "connect pod networks with allowFrom" in refused_with(api, ns, "y", "allowFrom")


# --- security groups -------------------------------------------------------------------------


def test_every_project_gets_neutrons_default_group_and_gets_it_back(
    api: client.ApiClient, project
) -> None:
    ns = project()
    default = eventually(lambda: group(api, ns, "default"), "the default group")
    assert default["spec"]["rules"] == [
        {"direction": "ingress", "ethertype": "IPv4", "remoteGroup": "default"},
        {"direction": "ingress", "ethertype": "IPv6", "remoteGroup": "default"},
        {"direction": "egress", "ethertype": "IPv4"},
        {"direction": "egress", "ethertype": "IPv6"},
    ]
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        SECURITY_GROUP.group, VERSION, ns, SECURITY_GROUP.plural, "default"
    )
    eventually(
        lambda: (
            group(api, ns, "default").get("metadata", {}).get("uid")
            not in (None, default["metadata"]["uid"])
        ),
        "the default group re-created",
    )


def test_groups_become_policies_per_network_with_exact_peers(
    api: client.ApiClient, project
) -> None:
    ns = project()
    an_image(api, ns)
    make(
        api,
        NETWORK,
        ns,
        "private",
        {"type": "pod", "allowFrom": [{"cidr": "192.0.2.0/24"}, {"network": {"name": "dmz"}}]},
    )
    rules = [
        {"direction": "ingress", "protocol": "tcp", "portRangeMin": 80, "remoteCIDR": "0.0.0.0/0"},
        {"direction": "ingress", "protocol": "tcp", "portRangeMin": 22, "remoteGroup": "web"},
        {"direction": "egress", "protocol": "udp", "portRangeMin": 53},
    ]
    make(api, SECURITY_GROUP, ns, "web", {"rules": rules})
    make(
        api, INSTANCE, ns, "on-net", server(networks=[{"name": "private"}], securityGroups=["web"])
    )
    make(api, INSTANCE, ns, "no-net", server(securityGroups=["web"]))
    eventually(lambda: in_phase(api, ns, "on-net", "ACTIVE"), "on-net ACTIVE")

    on_net = eventually(lambda: policy(api, ns, "securitygroup-web.private"), "the network policy")
    members = {"network.ostack.dev/name": "private", "network.ostack.dev/project": ns}
    assert on_net["spec"]["podSelector"] == {
        "matchLabels": {"securitygroup.ostack.dev/web": "", **members}
    }
    assert on_net["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert on_net["spec"]["ingress"] == [
        # 0.0.0.0/0 narrowed to the one CIDR the Network lets in.
        {
            "from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}],
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
        # The web group's members, but only those the Network reaches.
        {
            "from": [
                {"podSelector": {"matchLabels": {**members, "securitygroup.ostack.dev/web": ""}}},
                {
                    "podSelector": {
                        "matchLabels": {
                            "network.ostack.dev/name": "dmz",
                            "network.ostack.dev/project": ns,
                            "securitygroup.ostack.dev/web": "",
                        }
                    }
                },
            ],
            "ports": [{"port": 22, "protocol": "TCP"}],
        },
    ]
    assert on_net["spec"]["egress"] == [{"ports": [{"port": 53, "protocol": "UDP"}]}]
    assert on_net["metadata"]["ownerReferences"][0]["name"] == "web"

    on_project = eventually(lambda: policy(api, ns, "securitygroup-web"), "the project policy")
    assert on_project["spec"]["podSelector"]["matchExpressions"] == [
        {"key": "network.ostack.dev/name", "operator": "DoesNotExist"}
    ]
    assert on_project["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    web = eventually(
        lambda: (g := group(api, ns, "web")).get("status", {}).get("members") == 2 and g,
        "2 members",
    )
    assert web["status"]["networkPolicies"] == ["securitygroup-web", "securitygroup-web.private"]

    # The VM's pod carries exactly the labels the policies select on.
    vm = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "kubevirt.io", "v1", ns, "virtualmachines", "on-net"
    )
    labels = vm["spec"]["template"]["metadata"]["labels"]
    assert (
        labels["securitygroup.ostack.dev/web"] == "" and labels["ostack.dev/instance"] == "on-net"
    )
    assert {k: labels[k] for k in members} == members

    # A rule change reaches the policy; the last Instance leaving a domain takes its policy.
    patch(api, SECURITY_GROUP, ns, "web", {"rules": rules[:1]})
    eventually(
        lambda: len(policy(api, ns, "securitygroup-web.private")["spec"]["ingress"]) == 1, "1 rule"
    )
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        INSTANCE.group, VERSION, ns, INSTANCE.plural, "on-net"
    )
    eventually(lambda: policy(api, ns, "securitygroup-web.private") is None, "the policy pruned")
    eventually(lambda: group(api, ns, "web")["status"]["members"] == 1, "1 member")


def test_an_edited_policy_is_put_back(api: client.ApiClient, project) -> None:
    ns = project()
    an_image(api, ns)
    make(api, INSTANCE, ns, "vm", server())
    before = eventually(lambda: policy(api, ns, "securitygroup-default"), "the default policy")
    client.NetworkingV1Api(api).patch_namespaced_network_policy(
        "securitygroup-default", ns, {"spec": {"ingress": [{}]}}
    )
    eventually(
        lambda: policy(api, ns, "securitygroup-default")["spec"] == before["spec"], "put back"
    )


def test_an_unknown_group_is_refused_until_it_exists(api: client.ApiClient, project) -> None:
    ns = project()
    an_image(api, ns)
    make(api, INSTANCE, ns, "vm", server(securityGroups=["db"]))
    assert refused_with(api, ns, "vm", "db") == "SecurityGroup db does not exist in this Project"
    make(api, SECURITY_GROUP, ns, "db", {"rules": []})
    eventually(lambda: in_phase(api, ns, "vm", "ACTIVE"), "ACTIVE once the group exists")
    eventually(lambda: policy(api, ns, "securitygroup-db"), "its policy")


def test_shared_networks_serve_other_projects_and_others_are_refused(
    api: client.ApiClient, project
) -> None:
    owner, user = project(), project()
    an_image(api, user)
    make(
        api,
        NETWORK,
        owner,
        "public",
        {"type": "bridge", "shared": True, "subnets": [{"cidr": "10.50.0.0/24"}]},
    )
    make(api, NETWORK, owner, "closed", {"type": "bridge", "subnets": [{"cidr": "10.51.0.0/24"}]})
    make(api, INSTANCE, user, "vm", server(networks=[{"name": "public", "project": owner}]))
    address = eventually(lambda: address_on(api, user, "vm", "public"), "an address")
    assert [a["spec"]["holder"]["namespace"] for a in allocations(api, owner)] == [user]
    assert ipaddress.ip_address(address) in ipaddress.ip_network("10.50.0.0/24")
    make(api, INSTANCE, user, "no", server(networks=[{"name": "closed", "project": owner}]))
    assert (
        refused_with(api, user, "no", "not shared")
        == f"Network closed of Project {owner} is not shared"
    )
    # Another namespace's Instance owns no allocation there, so the network service
    # releases it when the Instance goes.
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        INSTANCE.group, VERSION, user, INSTANCE.plural, "vm"
    )
    eventually(lambda: not allocations(api, owner), "the address released across projects")


def test_a_restart_rewrites_nothing_converged(
    api: client.ApiClient, project, run_operator: Callable[..., Operator]
) -> None:
    ns = project()
    an_image(api, ns)
    bridge_network(api, ns)
    make(api, INSTANCE, ns, "vm", server(networks=[{"name": "lan", "fixedIP": "10.40.0.9"}]))
    eventually(lambda: address_on(api, ns, "vm", "lan"), "an address")
    eventually(lambda: policy(api, ns, "securitygroup-default"), "the default policy")
    eventually(lambda: group(api, ns, "default").get("status", {}).get("members") == 1, "member")
    eventually(lambda: network(api, ns, "lan")["status"]["subnets"][0]["used"] == 1, "counted")

    def versions() -> dict[str, str]:
        return {
            "network": network(api, ns, "lan")["metadata"]["resourceVersion"],
            "group": group(api, ns, "default")["metadata"]["resourceVersion"],
            "policy": policy(api, ns, "securitygroup-default")["metadata"]["resourceVersion"],
            "allocation": allocations(api, ns)[0]["metadata"]["resourceVersion"],
        }

    before = versions()
    operator = run_operator("network")
    operator.kill()
    operator.start()
    # Once the restarted operator has handled a fresh object, it has resumed the old ones.
    make(api, SECURITY_GROUP, ns, "probe", {"rules": []})
    eventually(lambda: group(api, ns, "probe").get("status", {}).get("conditions"), "resumed")
    assert versions() == before


def test_an_external_network_gives_a_floating_address(api: client.ApiClient, project) -> None:
    ns = project()
    an_image(api, ns)
    make(api, NETWORK, ns, "public", {"type": "pod", "external": True})
    web = [
        {"direction": "ingress", "protocol": "tcp", "portRangeMin": 80, "remoteCIDR": "0.0.0.0/0"}
    ]
    make(api, SECURITY_GROUP, ns, "web", {"rules": web})
    make(api, INSTANCE, ns, "site", server(networks=[{"name": "public"}], securityGroups=["web"]))
    core = client.CoreV1Api(api)

    def service():
        try:
            return core.read_namespaced_service("site-floating", ns)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    published = eventually(service, "the floating Service")
    assert published.spec.type == "LoadBalancer"
    assert [(p.protocol, p.port) for p in published.spec.ports] == [("TCP", 80)]
    assert published.spec.selector == {"ostack.dev/instance": "site"}
    # The cloud's load balancer gives it an address (played here by the test).
    core.patch_namespaced_service_status(
        "site-floating", ns, {"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}}
    )
    eventually(
        lambda: (
            {"network": "public", "interface": "floating", "floating": True, "ip": "198.51.100.7"}
            in (instance(api, ns, "site").get("status", {}).get("addresses") or [])
        ),
        "the floating address in the Instance's status",
    )
    # A new rule publishes its port; leaving the external Network unpublishes.
    patch(
        api,
        SECURITY_GROUP,
        ns,
        "web",
        {"rules": [*web, {"direction": "ingress", "protocol": "udp", "portRangeMin": 53}]},
    )
    eventually(lambda: len(service().spec.ports) == 2, "the new port published")
    patch(api, INSTANCE, ns, "site", {"networks": []})
    eventually(lambda: service() is None, "the floating Service gone")
