"""Crash test: operators SIGKILLed again and again while objects of several kinds roll out
and are edited; afterwards every object is Ready within a bound, each has exactly one of
each child, nothing is orphaned, and deleting everything leaves nothing behind.

Small in CI (OSTACK_CHAOS_OBJECTS, default 40; OSTACK_CHAOS_KILLS, default 4); `make
chaos` runs 200 objects and 10 kills.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client

from operators.blockstorage.api import VOLUME
from operators.common.kinds import VERSION
from operators.compute.api import INSTANCE
from operators.network.api import IP_ALLOCATION, NETWORK, SECURITY_GROUP
from tests.integration.test_compute import an_image
from tests.support import Operator, eventually
from tests.support import create_object as make
from tests.support import patch_spec as patch

pytestmark = pytest.mark.integration

OBJECTS = int(os.environ.get("OSTACK_CHAOS_OBJECTS", "40"))
KILLS = int(os.environ.get("OSTACK_CHAOS_KILLS", "4"))
VICTIMS = ("compute", "network", "blockstorage", "image")
READY_WITHIN = 240.0


@pytest.fixture(scope="module")
def operators(run_operator: Callable[..., Operator], simulator: object) -> dict[str, Operator]:
    return {service: run_operator(service) for service in ("identity", *VICTIMS)}


def items(api: client.ApiClient, ns: str, group: str, version: str, plural: str) -> list[dict]:
    return client.CustomObjectsApi(api).list_namespaced_custom_object(group, version, ns, plural)[
        "items"
    ]


def ready(obj: dict) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def kinds_of(api: client.ApiClient, ns: str) -> dict[str, list[dict]]:
    return {
        "Instance": items(api, ns, INSTANCE.group, VERSION, INSTANCE.plural),
        "Volume": items(api, ns, VOLUME.group, VERSION, VOLUME.plural),
        "SecurityGroup": items(api, ns, SECURITY_GROUP.group, VERSION, SECURITY_GROUP.plural),
    }


def kill_repeatedly(operators: dict[str, Operator], busy: threading.Thread) -> list[str]:
    """SIGKILL a random operator every second or two and start it again at once, KILLS
    times, while `busy` rolls objects out. This runs on the main thread: a child asks to
    die with the thread that started it, so restarts must come from one that stays."""
    chooser, kills = random.Random(7), []
    while len(kills) < KILLS:
        time.sleep(chooser.uniform(1.0, 2.5))
        victim = chooser.choice(VICTIMS)
        operators[victim].kill()
        operators[victim].start()
        kills.append(victim)
    busy.join()
    return kills


def test_operators_killed_during_a_rollout_leave_everything_right(
    api: client.ApiClient, project, operators: dict[str, Operator]
) -> None:
    ns = project()
    an_image(api, ns)
    make(api, NETWORK, ns, "lan", {"type": "bridge", "subnets": [{"cidr": "10.60.0.0/22"}]})
    n_instances, n_volumes = OBJECTS // 2, OBJECTS // 4
    n_groups = OBJECTS - n_instances - n_volumes
    plan: list[tuple[Any, str, dict]] = (
        [
            (
                INSTANCE,
                f"vm-{i}",
                {"flavor": "m1.tiny", "image": {"name": "cirros"}, "networks": [{"name": "lan"}]},
            )
            for i in range(n_instances)
        ]
        + [(VOLUME, f"vol-{i}", {"size": "1Gi"}) for i in range(n_volumes)]
        + [
            (SECURITY_GROUP, f"sg-{i}", {"rules": [{"direction": "egress"}]})
            for i in range(n_groups)
        ]
    )
    edits = (
        [(INSTANCE, f"vm-{i}", {"metadata": {"edited": "yes"}}) for i in range(0, n_instances, 3)]
        + [(VOLUME, f"vol-{i}", {"size": "2Gi"}) for i in range(0, n_volumes, 2)]
        + [
            (
                SECURITY_GROUP,
                f"sg-{i}",
                {"rules": [{"direction": "ingress", "protocol": "tcp", "portRangeMin": 22}]},
            )
            for i in range(0, n_groups, 2)
        ]
    )

    def roll_out() -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda p: make(api, p[0], ns, p[1], p[2]), plan))
            # Edits while the kills go on: metadata, a bigger Volume, a new rule.
            list(pool.map(lambda e: patch(api, e[0], ns, e[1], e[2]), edits))

    busy = threading.Thread(target=roll_out)
    busy.start()
    kills = kill_repeatedly(operators, busy)
    assert len(kills) == KILLS
    last_kill = time.monotonic()

    pending: list[str] = []

    def all_ready() -> dict[str, list[dict]] | None:
        found = kinds_of(api, ns)
        pending[:] = [
            f"{o['metadata']['name']}: {(o.get('status') or {}).get('conditions')}"
            for objs in found.values()
            for o in objs
            if not ready(o)
        ]
        return found if not pending else None

    deadline = time.monotonic() + READY_WITHIN
    while (found := all_ready()) is None and time.monotonic() < deadline:
        time.sleep(1)
    if found is None:
        stuck = pending[0].split(":")[0]
        custom = client.CustomObjectsApi(api)
        vm = custom.list_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines")
        vmis = custom.list_namespaced_custom_object(
            "kubevirt.io", "v1", ns, "virtualmachineinstances"
        )
        dvs = custom.list_namespaced_custom_object("cdi.kubevirt.io", "v1beta1", ns, "datavolumes")
        detail = {
            "vm": [v.get("status") for v in vm["items"] if v["metadata"]["name"] == stuck],
            "vmis": len(vmis["items"]),
            "dv": [
                d.get("status") for d in dvs["items"] if d["metadata"]["name"].startswith(stuck)
            ],
        }
        pytest.fail(f"not Ready {READY_WITHIN:.0f}s after the last kill: {pending[:3]} {detail}")
    settle = time.monotonic() - last_kill
    assert [len(found[k]) for k in ("Instance", "Volume", "SecurityGroup")] == [
        n_instances,
        n_volumes,
        n_groups + 1,  # + the Project's default group
    ]

    # Exactly one child per parent, and no orphans.
    vms = items(api, ns, "kubevirt.io", "v1", "virtualmachines")
    assert sorted(v["metadata"]["name"] for v in vms) == sorted(
        f"vm-{i}" for i in range(n_instances)
    )
    allocations = items(api, ns, IP_ALLOCATION.group, VERSION, IP_ALLOCATION.plural)
    holders = Counter(a["spec"]["holder"]["name"] for a in allocations)
    assert holders == Counter({f"vm-{i}": 1 for i in range(n_instances)})
    assert len({a["spec"]["address"] for a in allocations}) == n_instances
    claims = client.CoreV1Api(api).list_namespaced_persistent_volume_claim(ns).items
    volume_claims = Counter(
        c.metadata.name for c in claims if c.metadata.name.startswith("volume-")
    )
    assert volume_claims == Counter({f"volume-vol-{i}": 1 for i in range(n_volumes)})
    secrets = client.CoreV1Api(api).list_namespaced_secret(ns).items
    cloud_init = sorted(s.metadata.name for s in secrets if s.metadata.name.endswith("-cloudinit"))
    assert cloud_init == sorted(f"vm-{i}-cloudinit" for i in range(n_instances))
    print(f"\n{OBJECTS} objects, {KILLS} kills ({Counter(kills)}): Ready {settle:.1f}s later")

    # Deleting everything leaves nothing, and no finalizer holds anything.
    custom = client.CustomObjectsApi(api)
    for kind, name, _ in plan:
        custom.delete_namespaced_custom_object(kind.group, VERSION, ns, kind.plural, name)

    def all_gone() -> bool:
        left = kinds_of(api, ns)
        return (
            not left["Instance"]
            and not left["Volume"]
            and [g["metadata"]["name"] for g in left["SecurityGroup"]] == ["default"]
            and not items(api, ns, "kubevirt.io", "v1", "virtualmachines")
            and not items(api, ns, IP_ALLOCATION.group, VERSION, IP_ALLOCATION.plural)
        )

    eventually(all_gone, "everything deleted, no finalizer stuck", READY_WITHIN)
