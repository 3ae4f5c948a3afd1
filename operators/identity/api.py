"""Keystone's API: the Project, a tenant with its own namespace, members and quotas."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from operators.common.kinds import AGE, PHASE, READY, Column, Kind
from operators.common.schema import (
    DNS_LABEL_PATTERN,
    LIST_SET,
    ApiModel,
    Name,
    Quantity,
    Rule,
    count_set,
    exactly_one,
)
from operators.common.status import Status

GROUP = "identity.ostack.dev"

Role = Literal["admin", "member", "reader"]


class Member(ApiModel):
    """A user, group or service account and the roles it holds in the Project."""

    rules = (
        Rule(
            cel=exactly_one("user", "group", "serviceAccount"),
            message="a member is exactly one of user, group or serviceAccount",
            check=lambda m: count_set(m, "user", "group", "service_account") == 1,
        ),
    )

    user: str | None = Field(default=None, min_length=1, max_length=253)
    """A user name as the cluster's authenticator reports it (e.g. `alice`)."""
    group: str | None = Field(default=None, min_length=1, max_length=253)
    """A group name as the cluster's authenticator reports it (e.g. `devs`)."""
    service_account: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-.a-z0-9]*[a-z0-9])?$",
    )
    """A ServiceAccount: `name` in the Project's namespace, or `namespace/name`."""
    roles: list[Role] = Field(min_length=1, max_length=3, json_schema_extra=LIST_SET)
    """Roles held: `admin` manages everything in the Project (bucket ACLs included),
    `member` creates and uses resources, `reader` only reads."""


class Quotas(ApiModel):
    """Limits on what the Project may hold, counted as OpenStack counts them. An unset
    limit is unlimited. Cores and RAM are counted from flavors (what the Instance asked
    for), not from the pods that run the VMs."""

    instances: int | None = Field(default=None, ge=0)
    """Instances, whatever their power state."""
    cores: int | None = Field(default=None, ge=0)
    """vCPUs of all Instances, from their flavors."""
    ram: Quantity | None = None
    """Memory of all Instances, from their flavors (e.g. `40Gi`)."""
    volumes: int | None = Field(default=None, ge=0)
    """Volumes."""
    gigabytes: Quantity | None = None
    """Total size of Volumes and Snapshots (e.g. `500Gi`)."""
    snapshots: int | None = Field(default=None, ge=0)
    """Volume Snapshots."""
    buckets: int | None = Field(default=None, ge=0)
    """Object-store Buckets."""
    networks: int | None = Field(default=None, ge=0)
    """Networks."""
    images: int | None = Field(default=None, ge=0)
    """Images."""


def _name_is_namespace(project: dict) -> bool:
    name = project.get("metadata", {}).get("name", "")
    return "namespace" in project.get("spec", {}) or (
        len(name) <= 63 and re.fullmatch(DNS_LABEL_PATTERN, name) is not None
    )


def _namespace_kept(old: ProjectSpec, new: ProjectSpec) -> bool:
    return old.namespace == new.namespace


class ProjectSpec(ApiModel):
    """A tenant: a namespace of its own, its members' roles in it, and its quotas."""

    rules = (
        Rule(
            cel="has(self.__namespace__) == has(oldSelf.__namespace__)"
            " && (!has(self.__namespace__) || self.__namespace__ == oldSelf.__namespace__)",
            message="spec.namespace cannot change once the Project exists;"
            " create a new Project instead",
            transition=_namespace_kept,
        ),
    )

    namespace: Name | None = None
    """The namespace that holds the Project's resources; defaults to the Project's name.
    Fixed once set. A namespace that exists and is not this Project's is refused."""
    description: str | None = Field(default=None, max_length=255)
    """Free text describing the Project."""
    members: list[Member] = Field(default_factory=list, max_length=256)
    """Who may do what in the Project; each becomes RoleBindings in its namespace."""
    quotas: Quotas | None = None
    """Limits on what the Project may hold."""
    deletion_policy: Literal["Restrict", "Cascade"] = "Restrict"
    """`Restrict` (default): a Project that still holds resources is not deleted and its
    status lists what is left. `Cascade`: deleting the Project deletes its namespace and
    everything in it."""


class QuotaUsage(ApiModel):
    """How much of one quota is used."""

    in_use: Quantity
    """What the Project holds now."""
    limit: Quantity | None = None
    """The limit; absent when unlimited."""


class ProjectStatus(Status):
    """Observed state of a Project."""

    phase: Literal["Pending", "Ready", "Error", "Deleting"] | None = None
    """Pending, Ready, Error or Deleting."""
    namespace: str | None = None
    """The namespace the Project owns."""
    quota_usage: dict[str, QuotaUsage] | None = Field(default=None, max_length=16)
    """In use and limit per quota (instances, cores, ram, ...)."""
    remaining_resources: list[str] | None = Field(default=None, max_length=64)
    """While a `Restrict` Project is being deleted: what it still holds."""


PROJECT = Kind(
    group=GROUP,
    kind="Project",
    doc="A Keystone project: a tenant with its own namespace, role bindings for its members,"
    " quotas in OpenStack's terms and network isolation from other Projects.",
    plural="projects",
    short_names=("proj",),
    namespaced=False,
    spec=ProjectSpec,
    status=ProjectStatus,
    columns=(
        Column("Namespace", ".status.namespace", description="The Project's namespace"),
        PHASE,
        READY,
        AGE,
    ),
    rules=(
        Rule(
            cel="has(self.spec.__namespace__) || (size(self.metadata.name) <= 63"
            f" && self.metadata.name.matches('{DNS_LABEL_PATTERN}'))",
            message="a Project without spec.namespace is named like a namespace (at most 63"
            " lowercase letters, digits and '-'); set spec.namespace or rename it",
            check=_name_is_namespace,
        ),
    ),
)

KINDS = (PROJECT,)
