"""Installs CRDs into a cluster and waits until the apiserver serves them."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from operators.catalogue import KINDS
from operators.common import runtime
from operators.common.crdgen import crd

FIELD_MANAGER = "ostack-devcluster"
APPLY = "application/apply-patch+yaml"


class InstallError(RuntimeError):
    """A CRD was refused or did not become Established in time."""


def ostack_crds() -> list[dict[str, Any]]:
    """Our own CRDs, generated from the models, and kopf's peering (what `crds/` holds)."""
    return [crd(kind) for kind in KINDS] + [runtime.peering_crd()]


def install_crds(api: client.ApiClient, crds: list[dict[str, Any]], timeout: float = 60) -> None:
    """Server-side apply every CRD, then wait until all are Established."""
    extensions = client.ApiextensionsV1Api(api)
    for definition in crds:
        name = definition["metadata"]["name"]
        try:
            extensions.patch_custom_resource_definition(
                name,
                definition,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=APPLY,
            )
        except ApiException as error:
            raise InstallError(f"CRD {name} refused: {error.body}") from None
    pending = {d["metadata"]["name"] for d in crds}
    deadline = time.monotonic() + timeout
    while pending:
        pending = {n for n in pending if not _established(extensions, n)}
        if pending and time.monotonic() > deadline:
            raise InstallError(f"CRDs not Established after {timeout:.0f}s: {sorted(pending)}")
        if pending:
            time.sleep(0.2)


def _established(extensions: client.ApiextensionsV1Api, name: str) -> bool:
    status = extensions.read_custom_resource_definition(name).status
    return any(c.type == "Established" and c.status == "True" for c in status.conditions or [])


def install_tenant_roles(api: client.ApiClient) -> None:
    """The ostack-reader/member/admin/reseller ClusterRoles the chart ships."""
    from operators.identity.roles import tenant_cluster_roles

    rbac = client.RbacAuthorizationV1Api(api)
    for role in tenant_cluster_roles():
        rbac.patch_cluster_role(
            role["metadata"]["name"],
            role,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY,
        )


def install_everything(api: client.ApiClient) -> None:
    """What a cluster running ostack has: the upstream CRDs, ours, and the tenant roles."""
    from operators.devcluster.thirdparty import upstream_crds

    install_crds(api, upstream_crds() + ostack_crds())
    install_tenant_roles(api)
    install_flavors(api)


def install_flavors(api: client.ApiClient) -> None:
    """Nova's classic flavors as VirtualMachineClusterInstancetypes (the chart ships them)."""
    from kubernetes import dynamic

    from operators.compute.flavors import instancetypes

    resources = dynamic.DynamicClient(api).resources
    for flavor in instancetypes():
        resources.get(api_version=flavor["apiVersion"], kind=flavor["kind"]).server_side_apply(
            body=flavor,
            name=flavor["metadata"]["name"],
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )


def remove_admission(api: client.ApiClient) -> None:
    """Delete the operators' webhook registration, so nothing calls a webhook nobody
    serves once they have stopped (it is refused, not ignored, when unanswered)."""
    from operators.common.runtime import WEBHOOK_CONFIGURATION

    try:
        client.AdmissionregistrationV1Api(api).delete_validating_webhook_configuration(
            WEBHOOK_CONFIGURATION
        )
    except ApiException as error:
        if error.status != 404:
            raise
