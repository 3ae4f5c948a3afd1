"""Pure builders: a Project's spec in, the Kubernetes objects it should become out."""

from __future__ import annotations

from typing import Any

from operators.common import children
from operators.identity.api import Member, ProjectSpec, Quotas
from operators.identity.roles import ROLE_FOR
from operators.network import labels as net_labels

RBAC = "rbac.authorization.k8s.io"
ISOLATION_POLICY = "ostack-project-isolation"
QUOTA = "ostack-quota"
LIMITS = "ostack-defaults"

# Pod Security: virt-launcher pods pass `baseline`, and with the default masquerade
# binding most of `restricted`; but bridge bindings and Multus secondary networks need
# NET_ADMIN, which `restricted` forbids. So `baseline` is enforced and `restricted` is
# audited and warned about, which shows tenants what would break under it.
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}

# The ResourceQuota backstop counts objects atomically in the apiserver, so two creates
# racing past the admission webhook still cannot exceed a count. Cores, RAM and gigabytes
# have no ResourceQuota form that matches how OpenStack counts them (VM pods carry
# overhead; image and root-disk PVCs are not Cinder gigabytes), so only the webhook
# enforces those.
COUNTED = {
    "instances": "count/instances.compute.ostack.dev",
    "volumes": "count/volumes.blockstorage.ostack.dev",
    "snapshots": "count/snapshots.blockstorage.ostack.dev",
    "buckets": "count/buckets.objectstorage.ostack.dev",
    "networks": "count/networks.network.ostack.dev",
    "images": "count/images.image.ostack.dev",
}


def namespace_name(project: dict[str, Any], spec: ProjectSpec) -> str:
    return spec.namespace or project["metadata"]["name"]


def namespace(project: dict[str, Any], spec: ProjectSpec) -> dict[str, Any]:
    name = project["metadata"]["name"]
    meta = children.child_metadata(project, name, namespace_name(project, spec))
    meta["labels"].update(POD_SECURITY)
    if spec.description:
        meta["annotations"] = {"ostack.dev/description": spec.description}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def subject(member: Member, namespace: str) -> dict[str, str]:
    if member.user is not None:
        return {"kind": "User", "apiGroup": RBAC, "name": member.user}
    if member.group is not None:
        return {"kind": "Group", "apiGroup": RBAC, "name": member.group}
    assert member.service_account is not None
    account_namespace, _, account = member.service_account.rpartition("/")
    return {"kind": "ServiceAccount", "name": account, "namespace": account_namespace or namespace}


def role_bindings(project: dict[str, Any], spec: ProjectSpec) -> dict[str, dict[str, Any] | None]:
    """One RoleBinding per role, named after its ClusterRole; None for a role nobody holds
    (its binding must go)."""
    ns = namespace_name(project, spec)
    bindings: dict[str, dict[str, Any] | None] = {}
    for role, cluster_role in ROLE_FOR.items():
        subjects = [subject(m, ns) for m in spec.members if role in m.roles]
        bindings[cluster_role] = (
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "RoleBinding",
                "metadata": children.child_metadata(
                    project, project["metadata"]["name"], cluster_role, ns
                ),
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": cluster_role},
                "subjects": subjects,
            }
            if subjects
            else None
        )
    return bindings


def resource_quota(project: dict[str, Any], spec: ProjectSpec) -> dict[str, Any] | None:
    quotas = spec.quotas or Quotas()
    hard = {
        counted: str(getattr(quotas, field))
        for field, counted in COUNTED.items()
        if getattr(quotas, field) is not None
    }
    if not hard:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": children.child_metadata(
            project, project["metadata"]["name"], QUOTA, namespace_name(project, spec)
        ),
        "spec": {"hard": hard},
    }


def limit_range(project: dict[str, Any], spec: ProjectSpec) -> dict[str, Any]:
    # Pods that state no requests (CDI's importer and upload pods on some installs, a
    # tenant's debugging pod) still get a share the scheduler can count; virt-launcher pods
    # always state their own and are not affected.
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": children.child_metadata(
            project, project["metadata"]["name"], LIMITS, namespace_name(project, spec)
        ),
        "spec": {
            "limits": [{"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]
        },
    }


def isolation_policy(project: dict[str, Any], spec: ProjectSpec) -> dict[str, Any]:
    """Every pod of the Project is isolated: ingress only from the namespace's pods that
    are not Instances. Instances reach each other only as their SecurityGroups allow
    (NetworkPolicies only ever add allowances, so allowing Instance-to-Instance traffic
    here would let it past every group)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": children.child_metadata(
            project, project["metadata"]["name"], ISOLATION_POLICY, namespace_name(project, spec)
        ),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": net_labels.INSTANCE, "operator": "DoesNotExist"}
                                ]
                            }
                        }
                    ]
                }
            ],
        },
    }


def desired_children(
    project: dict[str, Any], spec: ProjectSpec
) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    """Every namespaced child as (apiVersion, kind, name, desired-or-None-to-delete)."""
    wanted: list[tuple[str, str, str, dict[str, Any] | None]] = [
        (f"{RBAC}/v1", "RoleBinding", name, body)
        for name, body in role_bindings(project, spec).items()
    ]
    wanted += [
        ("v1", "ResourceQuota", QUOTA, resource_quota(project, spec)),
        ("v1", "LimitRange", LIMITS, limit_range(project, spec)),
        (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            ISOLATION_POLICY,
            isolation_policy(project, spec),
        ),
    ]
    return wanted
