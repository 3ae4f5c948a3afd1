"""What each service's ServiceAccount may do: one ClusterRole per service, least privilege.

Written out by `make crds` into the chart (templates/service-roles.yaml), each guarded by
its service's `enabled` value, and checked by `make chart-test` with `kubectl auth
can-i`. No rule uses `*`. Secrets: only compute (cloud-init Secrets it writes, user-data
Secrets tenants name) and objectstorage (the Projects' object-store credentials and the
store's admin Secret) touch them; every other service is refused them.
"""

from __future__ import annotations

from typing import Any

from operators.catalogue import KINDS
from operators.common.kinds import Kind
from operators.identity.roles import ADMIN, MEMBER, READER, RESELLER

READ = ("get", "list", "watch")
WRITE = ("get", "list", "watch", "create", "update", "patch", "delete")
STATUS = ("get", "patch", "update")
Rule = tuple[str, tuple[str, ...], tuple[str, ...]]
"""(API group, resources, verbs)."""

KUBEVIRT = "kubevirt.io"
CDI = "cdi.kubevirt.io"
INSTANCETYPES = "instancetype.kubevirt.io"
CAPI = "cluster.x-k8s.io"

SERVICE_GROUPS = {
    "identity": "identity.ostack.dev",
    "compute": "compute.ostack.dev",
    "image": "image.ostack.dev",
    "blockstorage": "blockstorage.ostack.dev",
    "network": "network.ostack.dev",
    "objectstorage": "objectstorage.ostack.dev",
    "containerinfra": "containerinfra.ostack.dev",
}
"""Each service's own API group: the kinds it reconciles."""

COMMON: tuple[Rule, ...] = (
    # kopf: its resource discovery, Events, and leader election among replicas.
    ("apiextensions.k8s.io", ("customresourcedefinitions",), READ),
    ("", ("events",), ("create", "patch")),
    ("events.k8s.io", ("events",), ("create", "patch")),
    ("kopf.dev", ("clusterkopfpeerings",), ("get", "list", "watch", "patch")),
    # Which namespace is which Project's (operators.common.tenancy), for every service.
    ("identity.ostack.dev", ("projects",), READ),
)

NEEDS: dict[str, tuple[Rule, ...]] = {
    "identity": (
        ("", ("namespaces",), WRITE),
        ("", ("resourcequotas", "limitranges"), WRITE),
        ("rbac.authorization.k8s.io", ("rolebindings",), WRITE),
        ("networking.k8s.io", ("networkpolicies",), WRITE),
        (INSTANCETYPES, ("virtualmachineclusterinstancetypes",), READ),
        # The quotas count what a Project holds.
        ("compute.ostack.dev", ("instances",), READ),
        ("image.ostack.dev", ("images",), READ),
        ("blockstorage.ostack.dev", ("volumes", "snapshots"), READ),
        ("network.ostack.dev", ("networks",), READ),
        ("objectstorage.ostack.dev", ("buckets",), READ),
        ("containerinfra.ostack.dev", ("clusters",), READ),
        # Its admission webhook registers itself.
        ("admissionregistration.k8s.io", ("validatingwebhookconfigurations",), WRITE),
    ),
    "compute": (
        (KUBEVIRT, ("virtualmachines",), WRITE),
        (KUBEVIRT, ("virtualmachineinstances",), (*READ, "delete")),
        (
            "subresources.kubevirt.io",
            ("virtualmachineinstances/pause", "virtualmachineinstances/unpause"),
            ("update",),
        ),
        (INSTANCETYPES, ("virtualmachineclusterinstancetypes",), READ),
        (INSTANCETYPES, ("virtualmachinepreferences",), WRITE),
        (CDI, ("datavolumes",), ("get", "delete")),
        ("", ("secrets",), ("get", "create", "update", "patch")),
        # Floating addresses: a LoadBalancer Service per Instance on an external Network.
        ("", ("services",), WRITE),
        ("image.ostack.dev", ("images",), READ),
        ("blockstorage.ostack.dev", ("volumes",), READ),
        ("network.ostack.dev", ("networks", "securitygroups"), READ),
        ("network.ostack.dev", ("ipallocations",), WRITE),
    ),
    "image": (
        (CDI, ("datavolumes", "datasources"), WRITE),
        # It grants other Projects `create` on datavolumes/source, so it must hold it.
        (CDI, ("datavolumes/source",), ("create",)),
        (INSTANCETYPES, ("virtualmachinepreferences",), WRITE),
        ("rbac.authorization.k8s.io", ("roles", "rolebindings"), WRITE),
        ("", ("persistentvolumeclaims",), READ),
        ("blockstorage.ostack.dev", ("volumes",), READ),
    ),
    "blockstorage": (
        ("", ("persistentvolumeclaims",), WRITE),
        ("", ("configmaps",), ("get",)),
        (CDI, ("datavolumes",), WRITE),
        ("snapshot.storage.k8s.io", ("volumesnapshots",), WRITE),
        ("image.ostack.dev", ("images",), READ),
        ("compute.ostack.dev", ("instances",), READ),
    ),
    "network": (
        ("", ("namespaces",), READ),
        ("k8s.cni.cncf.io", ("network-attachment-definitions",), WRITE),
        ("networking.k8s.io", ("networkpolicies",), WRITE),
        (KUBEVIRT, ("virtualmachines",), READ),
        ("compute.ostack.dev", ("instances",), READ),
    ),
    "objectstorage": (
        ("", ("secrets",), ("get", "create", "patch")),
        ("", ("configmaps",), ("get",)),
    ),
    "containerinfra": (
        (CAPI, ("clusters", "machinedeployments"), WRITE),
        ("controlplane.cluster.x-k8s.io", ("kubeadmcontrolplanes",), WRITE),
        ("bootstrap.cluster.x-k8s.io", ("kubeadmconfigtemplates",), WRITE),
        (
            "infrastructure.cluster.x-k8s.io",
            ("kubevirtclusters", "kubevirtmachinetemplates"),
            WRITE,
        ),
        (INSTANCETYPES, ("virtualmachineclusterinstancetypes",), ("get",)),
        ("image.ostack.dev", ("images",), READ),
        ("network.ostack.dev", ("networks",), ("get",)),
    ),
}

# identity binds Project members to the tenant roles: RBAC lets it only with `bind`.
BINDS = {"identity": (READER, MEMBER, ADMIN, RESELLER)}


def _own_kinds(service: str, kinds: tuple[Kind, ...] = KINDS) -> list[Rule]:
    group = SERVICE_GROUPS[service]
    mine = [k for k in kinds if k.group == group]
    return [
        (group, tuple(k.plural for k in mine), WRITE),
        (group, tuple(f"{k.plural}/status" for k in mine), STATUS),
    ]


def service_rules(service: str) -> list[dict[str, Any]]:
    rules = [*COMMON, *_own_kinds(service), *NEEDS[service]]
    found = [
        {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}
        for group, resources, verbs in rules
    ]
    if service in BINDS:
        found.append(
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["clusterroles"],
                "resourceNames": list(BINDS[service]),
                "verbs": ["bind"],
            }
        )
    return found


def service_role(service: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": f"ostack-{service}",
            "labels": {
                "app.kubernetes.io/part-of": "ostack",
                "app.kubernetes.io/component": service,
            },
        },
        "rules": service_rules(service),
    }
