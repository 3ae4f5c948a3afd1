"""The upstream APIs installed into the dev cluster: which kinds, and their CRDs.

The schemas come from `third_party/` beside the checkout (see its SOURCES.md; the env
var `OSTACK_THIRD_PARTY` points elsewhere): CRD YAML as published for the CSI snapshot,
Multus and Cluster API kinds, and for KubeVirt and CDI, which publish only swagger, CRDs
converted from their definitions (`openapi_to_crd`). Without that directory every kind
gets a permissive CRD, which keeps the operators working but validates nothing.

`CATALOGUE` is the one list of kinds; names, scopes, versions and subresources follow
what KubeVirt v1.9.0 and CDI v1.66.0 install (their operators' CRD code), not guesses.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from operators.devcluster.openapi_to_crd import SchemaConverter, free_form

log = logging.getLogger(__name__)

ENV_VAR = "OSTACK_THIRD_PARTY"
KUBEVIRT_OPENAPI = "openapi/kubevirt-v1.9.0.json"
CDI_OPENAPI = "openapi/cdi-v1.66.0.json"
#: Annotation saying where a CRD's schema came from.
SOURCE_ANNOTATION = "devcluster.ostack.io/schema-source"

# Definitions upstream marks `+kubebuilder:pruning:PreserveUnknownFields`; the swagger
# loses the marker.
_PRESERVE_UNKNOWN = {KUBEVIRT_OPENAPI: ("v1.Clock",)}

_V1ALPHA3_WARNING = (
    "kubevirt.io/v1alpha3 is now deprecated and will be removed in a future release."
)
_EXPORT_WARNING = (
    "export.kubevirt.io/v1beta1 VirtualMachineExport is now deprecated"
    " and will be removed in a future version."
)


@dataclass(frozen=True)
class Version:
    """One version of a kind as upstream serves it."""

    name: str
    storage: bool = False
    served: bool = True
    deprecated: bool = False
    deprecation_warning: str | None = None


@dataclass(frozen=True)
class UpstreamKind:
    """A kind of an upstream API and what its CRD declares besides the schema.

    `openapi` is the swagger document (relative to third_party/) whose `definition` is
    converted, the same schema for every version as upstream does; None means the CRD is
    published as YAML under `crds/`.
    """

    group: str
    kind: str
    versions: tuple[Version, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    scope: Literal["Namespaced", "Cluster"] = "Namespaced"
    status: bool = False
    openapi: str | None = None
    definition: str | None = None
    plural_name: str | None = None
    singular_name: str | None = None
    api_approval: str | None = None
    """The `api-approved.kubernetes.io` annotation, which *.k8s.io groups must carry."""

    @property
    def plural(self) -> str:
        return self.plural_name or f"{self.kind.lower()}s"

    @property
    def singular(self) -> str:
        return self.singular_name or self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


def _kubevirt(
    group: str, kind: str, definition: str, *versions: Version, **kw: Any
) -> UpstreamKind:
    return UpstreamKind(
        group, kind, versions, openapi=KUBEVIRT_OPENAPI, definition=definition, **kw
    )


def _cdi(kind: str, *short_names: str, status: bool = False) -> UpstreamKind:
    return UpstreamKind(
        "cdi.kubevirt.io",
        kind,
        (Version("v1beta1", storage=True),),
        short_names=short_names,
        categories=("all",),
        status=status,
        openapi=CDI_OPENAPI,
        definition=f"v1beta1.{kind}",
    )


def _published(group: str, kind: str, *versions: Version, **kw: Any) -> UpstreamKind:
    return UpstreamKind(group, kind, versions, **kw)


_CORE = (
    Version("v1", storage=True),
    Version("v1alpha3", deprecated=True, deprecation_warning=_V1ALPHA3_WARNING),
)
_SNAPSHOT = (Version("v1alpha1"), Version("v1beta1", storage=True))
_INSTANCETYPE = (Version("v1beta1", storage=True),)
_CAPI = (Version("v1beta1", deprecated=True), Version("v1beta2", storage=True))
_CSI = (Version("v1", storage=True), Version("v1beta1", served=False, deprecated=True))
_CSI_APPROVAL = "https://github.com/kubernetes-csi/external-snapshotter/pull/"
_ALL = ("all",)
_CAPI_CATEGORY = ("cluster-api",)

CATALOGUE: tuple[UpstreamKind, ...] = (
    # KubeVirt v1.9.0 (virt-operator's crds.go). The VMI has no status subresource.
    _kubevirt("kubevirt.io", "VirtualMachine", "v1.VirtualMachine", *_CORE,
              short_names=("vm", "vms"), categories=_ALL, status=True),
    _kubevirt("kubevirt.io", "VirtualMachineInstance", "v1.VirtualMachineInstance", *_CORE,
              short_names=("vmi", "vmis"), categories=_ALL),
    _kubevirt("kubevirt.io", "VirtualMachineInstanceMigration",
              "v1.VirtualMachineInstanceMigration", *_CORE,
              short_names=("vmim", "vmims"), categories=_ALL, status=True),
    _kubevirt("instancetype.kubevirt.io", "VirtualMachineInstancetype",
              "v1beta1.VirtualMachineInstancetype", *_INSTANCETYPE,
              short_names=("vminstancetype", "vminstancetypes", "vmf", "vmfs"), categories=_ALL),
    _kubevirt("instancetype.kubevirt.io", "VirtualMachineClusterInstancetype",
              "v1beta1.VirtualMachineClusterInstancetype", *_INSTANCETYPE,
              short_names=("vmclusterinstancetype", "vmclusterinstancetypes", "vmcf", "vmcfs"),
              scope="Cluster"),
    _kubevirt("instancetype.kubevirt.io", "VirtualMachinePreference",
              "v1beta1.VirtualMachinePreference", *_INSTANCETYPE,
              short_names=("vmpref", "vmprefs", "vmp", "vmps"), categories=_ALL),
    _kubevirt("instancetype.kubevirt.io", "VirtualMachineClusterPreference",
              "v1beta1.VirtualMachineClusterPreference", *_INSTANCETYPE,
              short_names=("vmcp", "vmcps"), scope="Cluster"),
    _kubevirt("snapshot.kubevirt.io", "VirtualMachineSnapshot",
              "v1beta1.VirtualMachineSnapshot", *_SNAPSHOT,
              short_names=("vmsnapshot", "vmsnapshots"), categories=_ALL, status=True),
    _kubevirt("snapshot.kubevirt.io", "VirtualMachineSnapshotContent",
              "v1beta1.VirtualMachineSnapshotContent", *_SNAPSHOT,
              short_names=("vmsnapshotcontent", "vmsnapshotcontents"), categories=_ALL,
              status=True),
    _kubevirt("snapshot.kubevirt.io", "VirtualMachineRestore",
              "v1beta1.VirtualMachineRestore", *_SNAPSHOT,
              short_names=("vmrestore", "vmrestores"), categories=_ALL, status=True),
    _kubevirt("export.kubevirt.io", "VirtualMachineExport", "v1.VirtualMachineExport",
              Version("v1beta1", deprecated=True, deprecation_warning=_EXPORT_WARNING),
              Version("v1", storage=True),
              short_names=("vmexport", "vmexports"), categories=_ALL, status=True),
    _kubevirt("clone.kubevirt.io", "VirtualMachineClone", "v1beta1.VirtualMachineClone",
              Version("v1alpha1"), Version("v1beta1", storage=True),
              short_names=("vmclone", "vmclones"), categories=_ALL, status=True),
    # CDI v1.66.0 (crds_generated.go): only the DataVolume has a status subresource.
    _cdi("DataVolume", "dv", "dvs", status=True),
    _cdi("DataSource", "das"),
    _cdi("DataImportCron", "dic", "dics"),
    # Published CRD YAML (third_party/crds); listed for the permissive fallback.
    _published("snapshot.storage.k8s.io", "VolumeSnapshot", *_CSI,
               short_names=("vs",), status=True, api_approval=f"{_CSI_APPROVAL}814"),
    _published("snapshot.storage.k8s.io", "VolumeSnapshotContent", *_CSI,
               short_names=("vsc", "vscs"), scope="Cluster", status=True,
               api_approval=f"{_CSI_APPROVAL}955"),
    _published("snapshot.storage.k8s.io", "VolumeSnapshotClass", *_CSI,
               short_names=("vsclass", "vsclasses"), scope="Cluster",
               plural_name="volumesnapshotclasses", api_approval=f"{_CSI_APPROVAL}814"),
    _published("k8s.cni.cncf.io", "NetworkAttachmentDefinition", Version("v1", storage=True),
               short_names=("net-attach-def",), plural_name="network-attachment-definitions",
               singular_name="network-attachment-definition"),
    _published("cluster.x-k8s.io", "Cluster", *_CAPI, short_names=("cl",),
               categories=_CAPI_CATEGORY, status=True),
    _published("cluster.x-k8s.io", "Machine", *_CAPI, short_names=("ma",),
               categories=_CAPI_CATEGORY, status=True),
    _published("cluster.x-k8s.io", "MachineDeployment", *_CAPI, short_names=("md",),
               categories=_CAPI_CATEGORY, status=True),
    _published("bootstrap.cluster.x-k8s.io", "KubeadmConfig", *_CAPI,
               categories=_CAPI_CATEGORY, status=True),
    _published("bootstrap.cluster.x-k8s.io", "KubeadmConfigTemplate", *_CAPI,
               categories=_CAPI_CATEGORY),
    _published("controlplane.cluster.x-k8s.io", "KubeadmControlPlane", *_CAPI,
               short_names=("kcp",), categories=_CAPI_CATEGORY, status=True),
    _published("infrastructure.cluster.x-k8s.io", "KubevirtCluster",
               Version("v1alpha1", storage=True), categories=_CAPI_CATEGORY, status=True),
    _published("infrastructure.cluster.x-k8s.io", "KubevirtMachine",
               Version("v1alpha1", storage=True), categories=_CAPI_CATEGORY, status=True),
    _published("infrastructure.cluster.x-k8s.io", "KubevirtMachineTemplate",
               Version("v1alpha1", storage=True), categories=_CAPI_CATEGORY),
)  # fmt: skip


def third_party_dir() -> Path:
    """Where the upstream schemas are: $OSTACK_THIRD_PARTY, else beside the checkout."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "third_party"


def upstream_crds(third_party: Path | None = None) -> list[dict[str, Any]]:
    """Every upstream CRD the dev cluster installs (apiextensions.k8s.io/v1 dicts).

    Catalogue kinds come first, in catalogue order, then any other CRD found under
    `crds/`. A missing directory or file gives permissive CRDs, with a warning.
    """
    directory = (third_party or third_party_dir()).resolve()
    if not directory.is_dir():
        log.warning(
            "upstream API schemas not found at %s (set %s to the third_party directory): "
            "installing permissive CRDs for %d kinds, which validate nothing",
            directory,
            ENV_VAR,
            len(CATALOGUE),
        )
        return [permissive_crd(kind) for kind in CATALOGUE]
    return copy.deepcopy(_crds_from(directory))


@cache
def _crds_from(directory: Path) -> list[dict[str, Any]]:
    published = load_crd_files(directory / "crds")
    converters: dict[str, SchemaConverter | None] = {}
    crds: list[dict[str, Any]] = []
    for kind in CATALOGUE:
        if kind.openapi is None:
            crd = published.pop(kind.crd_name, None)
            if crd is None:
                log.warning(
                    "%s: no CRD under %s; installing a permissive one",
                    kind.crd_name,
                    directory / "crds",
                )
                crd = permissive_crd(kind)
        else:
            if kind.openapi not in converters:
                converters[kind.openapi] = _converter(directory, kind.openapi)
            converter = converters[kind.openapi]
            crd = converted_crd(kind, converter) if converter else permissive_crd(kind)
        crds.append(crd)
    for name, crd in published.items():
        log.info("%s: installing it as published (not in the catalogue)", name)
        crds.append(crd)
    return crds


def _converter(directory: Path, document: str) -> SchemaConverter | None:
    path = directory / document
    try:
        definitions = json.loads(path.read_text())["definitions"]
    except FileNotFoundError:
        log.warning("%s is missing: its kinds get permissive CRDs", path)
        return None
    return SchemaConverter(definitions, preserve_unknown=_PRESERVE_UNKNOWN.get(document, ()))


def load_crd_files(directory: Path) -> dict[str, dict[str, Any]]:
    """The CRDs in the YAML files under `directory`, by name, as published.

    Empty documents are skipped, and so are other kinds (with a warning); the `status`
    a generator may have left in the file is dropped (the apiserver owns it).
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: dict[str, dict[str, Any]] = {}
    if not directory.is_dir():
        return found
    for path in sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")):
        with path.open() as stream:
            for doc in yaml.load_all(stream, Loader=loader):
                if not doc:
                    continue
                if doc.get("kind") != "CustomResourceDefinition":
                    log.warning("%s: skipping a %s, not a CRD", path, doc.get("kind"))
                    continue
                doc.pop("status", None)
                found[doc["metadata"]["name"]] = doc
    return found


def converted_crd(kind: UpstreamKind, converter: SchemaConverter) -> dict[str, Any]:
    """The CRD of a swagger-described kind, with its definition as schema."""
    if kind.definition is None:
        raise ValueError(f"{kind.crd_name}: no swagger definition to convert")
    schema = converter.crd_schema(kind.definition)
    source = f"{Path(kind.openapi or '').name}#/definitions/{kind.definition}"
    return _crd(kind, schema, source)


def permissive_crd(kind: UpstreamKind) -> dict[str, Any]:
    """A CRD that accepts any object of the kind, for when no schema is at hand."""
    return _crd(kind, free_form(), "none (permissive)")


def _crd(kind: UpstreamKind, schema: dict[str, Any], source: str) -> dict[str, Any]:
    names: dict[str, Any] = {
        "kind": kind.kind,
        "listKind": f"{kind.kind}List",
        "plural": kind.plural,
        "singular": kind.singular,
    }
    if kind.short_names:
        names["shortNames"] = list(kind.short_names)
    if kind.categories:
        names["categories"] = list(kind.categories)
    versions = []
    for version in kind.versions:
        entry: dict[str, Any] = {
            "name": version.name,
            "served": version.served,
            "storage": version.storage,
            "schema": {"openAPIV3Schema": copy.deepcopy(schema)},
        }
        if version.deprecated:
            entry["deprecated"] = True
        if version.deprecation_warning:
            entry["deprecationWarning"] = version.deprecation_warning
        if kind.status:
            entry["subresources"] = {"status": {}}
        versions.append(entry)
    annotations = {SOURCE_ANNOTATION: source}
    if kind.api_approval:
        annotations["api-approved.kubernetes.io"] = kind.api_approval
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "annotations": annotations},
        "spec": {
            "group": kind.group,
            "names": names,
            "scope": kind.scope,
            "versions": versions,
        },
    }
