"""Fuzzing admission and reconcile: hypothesis-generated specs, valid and invalid, against
the real apiserver and operators. Each one is either refused with a message, or accepted
and then given a Ready condition (True, or False with a message) by its operator; no
operator ever crashes. OSTACK_FUZZ_EXAMPLES sets how many specs per kind (default 25)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from operators.common.kinds import VERSION
from operators.compute.api import INSTANCE
from operators.network.api import NETWORK, SECURITY_GROUP
from tests.integration.test_compute import an_image
from tests.support import Operator, eventually
from tests.support import read_object as get

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("OSTACK_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

junk = st.one_of(
    st.text(max_size=12),
    st.integers(-5, 70000),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
names = st.sampled_from(["cirros", "lan", "private", "ghost", "Bad_Name", "default", "a" * 70])
addresses = st.sampled_from(
    ["10.70.0.9", "10.70.0.1", "10.99.0.1", "fd00::5", "not-an-ip", "10.70.0.0"]
)
quantities = st.sampled_from(["1Gi", "512Mi", "0", "-1Gi", "lots", "20G"])


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """A field left out, set from `strategy` (most often), or set to junk."""
    return st.one_of(st.just(None), strategy, strategy, strategy, junk)


instance_specs = st.fixed_dictionaries(
    # Mostly well-formed at the top, so that many reach the controller; junk below.
    {
        "flavor": st.sampled_from(["m1.tiny", "m1.small", "m9.huge"]),
        "image": st.fixed_dictionaries({"name": names}),
    },
    optional={
        "resources": optional(
            st.fixed_dictionaries({"cpu": st.integers(-1, 600), "memory": quantities})
        ),
        "bootVolume": optional(st.fixed_dictionaries({"name": names})),
        "networks": optional(
            st.lists(
                st.fixed_dictionaries({"name": names}, optional={"fixedIP": addresses}), max_size=3
            )
        ),
        "securityGroups": optional(st.lists(names, max_size=3)),
        "powerState": optional(st.sampled_from(["Running", "Stopped", "Paused", "Exploded"])),
        "rootDiskSize": optional(quantities),
        "metadata": optional(
            st.dictionaries(st.text(max_size=8), st.text(max_size=300), max_size=3)
        ),
        "keyPairs": optional(
            st.lists(st.sampled_from(["ssh-ed25519 AAAAC3Nza k", "nonsense"]), max_size=2)
        ),
        "userData": optional(st.text(max_size=40)),
        "shelved": optional(st.booleans()),
    },
)
network_specs = st.fixed_dictionaries(
    {},
    optional={
        "type": optional(st.sampled_from(["pod", "bridge", "vlan", "overlay"])),
        "vlanId": optional(st.integers(-1, 5000)),
        "subnets": optional(
            st.lists(
                st.fixed_dictionaries(
                    {"cidr": st.sampled_from(["10.70.0.0/24", "10.70.0.5/24", "fd00::/64", "x"])},
                    optional={
                        "gateway": addresses,
                        "allocationPools": st.lists(
                            st.fixed_dictionaries({"start": addresses, "end": addresses}),
                            max_size=2,
                        ),
                    },
                ),
                max_size=3,
            )
        ),
        "shared": optional(st.booleans()),
        "allowFrom": optional(
            st.lists(
                st.one_of(
                    st.fixed_dictionaries(
                        {"cidr": st.sampled_from(["192.0.2.0/24", "192.0.2.1/24"])}
                    ),
                    st.fixed_dictionaries({"project": names}),
                    st.fixed_dictionaries({"network": st.fixed_dictionaries({"name": names})}),
                ),
                max_size=3,
            )
        ),
    },
)
rules = st.fixed_dictionaries(
    {"direction": st.sampled_from(["ingress", "egress", "sideways"])},
    optional={
        "protocol": st.sampled_from(["tcp", "udp", "icmp", "gre"]),
        "portRangeMin": st.integers(-1, 70000),
        "portRangeMax": st.integers(-1, 70000),
        "remoteCIDR": st.sampled_from(["0.0.0.0/0", "10.0.0.1/8", "::/0"]),
        "remoteGroup": names,
        "ethertype": st.sampled_from(["IPv4", "IPv6", "IPX"]),
    },
)
group_specs = st.fixed_dictionaries({}, optional={"rules": optional(st.lists(rules, max_size=4))})


def clean(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if v is not None}


@pytest.fixture(scope="module")
def running(run_operator: Callable[..., Operator], simulator: object) -> dict[str, Operator]:
    return {s: run_operator(s) for s in ("identity", "image", "compute", "network")}


@pytest.fixture(scope="module")
def fuzz_ns(api: client.ApiClient, running: dict[str, Operator]) -> str:
    """One Project for every example, with an Image and a bridge Network to refer to."""
    name = f"fuzz-{uuid.uuid4().hex[:6]}"
    custom = client.CustomObjectsApi(api)
    custom.create_cluster_custom_object(
        "identity.ostack.dev",
        VERSION,
        "projects",
        {
            "apiVersion": f"identity.ostack.dev/{VERSION}",
            "kind": "Project",
            "metadata": {"name": name},
            "spec": {"deletionPolicy": "Cascade"},
        },
    )
    eventually(
        lambda: (
            custom.get_cluster_custom_object("identity.ostack.dev", VERSION, "projects", name)
            .get("status", {})
            .get("phase")
            == "Ready"
        ),
        "the fuzz Project",
    )
    an_image(api, name)
    custom.create_namespaced_custom_object(
        NETWORK.group,
        VERSION,
        name,
        NETWORK.plural,
        {
            "apiVersion": NETWORK.api_version,
            "kind": "Network",
            "metadata": {"name": "lan"},
            "spec": {"type": "bridge", "subnets": [{"cidr": "10.70.0.0/24"}]},
        },
    )
    yield name
    custom.delete_cluster_custom_object("identity.ostack.dev", VERSION, "projects", name)


def submit(api: client.ApiClient, ns: str, kind, spec: dict[str, Any], operators) -> None:
    name = f"f-{uuid.uuid4().hex[:8]}"
    body = {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {"name": name},
        "spec": clean(spec),
    }
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            kind.group, VERSION, ns, kind.plural, body
        )
    except ApiException as error:
        assert error.status in (400, 403, 422), error.body
        assert "message" in (error.body or ""), error.body
        event(f"{kind.kind} refused at admission")
        return

    def condition() -> dict | None:
        obj = get(api, kind.group, VERSION, kind.plural, ns, name) or {}
        ready = [
            c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"
        ]
        return ready[0] if ready else None

    found = eventually(condition, f"a Ready condition on {kind.kind} {clean(spec)}", 45)
    assert found["status"] == "True" or found["message"], found
    event(f"{kind.kind} accepted, Ready={found['status']}")
    for service, operator in operators.items():
        assert operator.process.poll() is None, f"{service} died:\n{operator.tail()}"


@FUZZ
@given(spec=instance_specs)
def test_instances(api: client.ApiClient, fuzz_ns: str, running, spec: dict) -> None:
    submit(api, fuzz_ns, INSTANCE, spec, running)


@FUZZ
@given(spec=network_specs)
def test_networks(api: client.ApiClient, fuzz_ns: str, running, spec: dict) -> None:
    submit(api, fuzz_ns, NETWORK, spec, running)


@FUZZ
@given(spec=group_specs)
def test_security_groups(api: client.ApiClient, fuzz_ns: str, running, spec: dict) -> None:
    submit(api, fuzz_ns, SECURITY_GROUP, spec, running)
