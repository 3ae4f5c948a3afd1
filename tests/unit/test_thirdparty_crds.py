"""The upstream CRDs of the dev cluster: well-formed, structural, and small enough."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from operators.devcluster import thirdparty
from operators.devcluster.openapi_to_crd import SchemaConverter, SchemaError
from operators.devcluster.thirdparty import CATALOGUE, upstream_crds

# JSONSchemaProps fields a structural CRD schema may use.
_ALLOWED_KEYS = {
    "description",
    "type",
    "format",
    "title",
    "default",
    "example",
    "externalDocs",
    "nullable",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
}
_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
_MiB = 1024 * 1024


@pytest.fixture(scope="module")
def crds() -> list[dict[str, Any]]:
    return upstream_crds()


@pytest.fixture(scope="module")
def by_name(crds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {crd["metadata"]["name"]: crd for crd in crds}


def _storage_schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    return version["schema"]["openAPIV3Schema"]


def _at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """The node at a dotted path; `[]` steps into array items."""
    node = schema
    for step in path.split("."):
        items = step.endswith("[]")
        node = node["properties"][step.removesuffix("[]")]
        if items:
            node = node["items"]
    return node


def _schemas(crd: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for version in crd["spec"]["versions"]:
        yield f"{crd['metadata']['name']}/{version['name']}", version["schema"]["openAPIV3Schema"]


def _structural_errors(node: Any, path: str) -> Iterator[str]:
    """Why `node` is not a structural schema (nothing when it is)."""
    if not isinstance(node, dict):
        yield f"{path}: not a schema object"
        return
    for key in node.keys() - _ALLOWED_KEYS:
        yield f"{path}: {key!r} is not allowed in a CRD schema"
    kind = node.get("type")
    # Only int-or-string and keep-unknown nodes may go without a type.
    if node.get("x-kubernetes-int-or-string"):
        if kind not in (None, "string"):
            yield f"{path}: int-or-string with type {kind!r}"
    elif node.get("x-kubernetes-preserve-unknown-fields"):
        if kind not in (None, "object"):
            yield f"{path}: keeps unknown fields but is a {kind}"
    elif kind not in _TYPES:
        yield f"{path}: no type (or an unknown one: {kind!r})"
    if "properties" in node and "additionalProperties" in node:
        yield f"{path}: both properties and additionalProperties"
    if ("properties" in node or "additionalProperties" in node) and kind != "object":
        yield f"{path}: fields on a {kind}"
    for name, child in node.get("properties", {}).items():
        yield from _structural_errors(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _structural_errors(node["additionalProperties"], f"{path}{{}}")
    if kind == "array":
        if not isinstance(node.get("items"), dict):
            yield f"{path}: an array without items"
        else:
            yield from _structural_errors(node["items"], f"{path}[]")
    if node.get("x-kubernetes-list-type") == "map":
        items = node.get("items", {})
        keys = node.get("x-kubernetes-list-map-keys") or []
        if not keys:
            yield f"{path}: list-map without keys"
        for key in keys:
            if key not in items.get("required", ()) and "default" not in items.get(
                "properties", {}
            ).get(key, {}):
                yield f"{path}: list-map key {key!r} neither required nor defaulted"


def _nodes(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every schema node under (and with) `schema`."""
    yield schema
    for child in schema.get("properties", {}).values():
        yield from _nodes(child)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _nodes(schema[key])


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from _keys(value)


def test_every_crd_is_well_formed(crds: list[dict[str, Any]]) -> None:
    assert crds
    for crd in crds:
        spec = crd["spec"]
        names = spec["names"]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["metadata"]["name"] == f"{names['plural']}.{spec['group']}"
        assert spec["scope"] in ("Namespaced", "Cluster")
        storage = [v for v in spec["versions"] if v["storage"]]
        assert len(storage) == 1, crd["metadata"]["name"]
        assert storage[0]["served"]
        assert len({v["name"] for v in spec["versions"]}) == len(spec["versions"])


def test_names_are_unique(crds: list[dict[str, Any]]) -> None:
    names = [crd["metadata"]["name"] for crd in crds]
    assert len(names) == len(set(names))


def test_no_ref_anywhere(crds: list[dict[str, Any]]) -> None:
    for crd in crds:
        assert "$ref" not in set(_keys(crd)), crd["metadata"]["name"]


def test_every_schema_is_structural(crds: list[dict[str, Any]]) -> None:
    errors = [
        error
        for crd in crds
        for where, schema in _schemas(crd)
        for error in _structural_errors(schema, where)
    ]
    assert errors == []


def test_converted_schemas_carry_no_swagger_only_keys(crds: list[dict[str, Any]]) -> None:
    for crd in crds:
        source = crd["metadata"].get("annotations", {}).get(thirdparty.SOURCE_ANNOTATION, "")
        if ".json#" not in source:
            continue
        for node in _nodes(_storage_schema(crd)):
            assert not {k for k in node if k.startswith("x-kubernetes-patch")}
            assert "default" not in node
            assert "x-kubernetes-unions" not in node


def test_every_crd_is_well_under_a_mebibyte(crds: list[dict[str, Any]]) -> None:
    for crd in crds:
        size = len(json.dumps(crd, separators=(",", ":")))
        assert size < _MiB, (crd["metadata"]["name"], size)


def test_catalogue_and_files_agree(crds: list[dict[str, Any]], tmp_path: Path) -> None:
    """The permissive fallback names the same CRDs the real schemas give."""
    fallback = upstream_crds(tmp_path / "absent")
    assert [c["metadata"]["name"] for c in fallback] == [c["metadata"]["name"] for c in crds]
    for real, permissive in zip(crds, fallback, strict=True):
        for key in ("group", "scope"):
            assert real["spec"][key] == permissive["spec"][key], real["metadata"]["name"]
        names = real["spec"]["names"]
        assert {"listKind": f"{names['kind']}List", **names} == permissive["spec"]["names"]
        approval = "api-approved.kubernetes.io"  # required for *.k8s.io groups
        assert real["metadata"].get("annotations", {}).get(approval) == permissive["metadata"][
            "annotations"
        ].get(approval)
        assert [(v["name"], v["served"], v["storage"]) for v in real["spec"]["versions"]] == [
            (v["name"], v["served"], v["storage"]) for v in permissive["spec"]["versions"]
        ]


def test_virtual_machine(by_name: dict[str, dict[str, Any]]) -> None:
    crd = by_name["virtualmachines.kubevirt.io"]
    names = crd["spec"]["names"]
    assert names["kind"] == "VirtualMachine"
    assert names["shortNames"] == ["vm", "vms"]
    assert names["categories"] == ["all"]
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    assert versions["v1"]["storage"] and versions["v1"]["subresources"] == {"status": {}}
    assert versions["v1alpha3"]["deprecated"] and not versions["v1alpha3"]["storage"]
    schema = _storage_schema(crd)
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["required"] == ["spec"]
    domain = _at(schema, "spec.template.spec.domain")
    assert "devices" in domain["properties"]
    assert domain["properties"]["clock"]["x-kubernetes-preserve-unknown-fields"] is True
    template_meta = _at(schema, "spec.template.metadata")
    assert template_meta["x-kubernetes-preserve-unknown-fields"] is True
    assert "properties" not in template_meta
    dv_templates = _at(schema, "spec.dataVolumeTemplates")
    assert dv_templates["type"] == "array"
    dv_meta = _at(schema, "spec.dataVolumeTemplates[].metadata")
    assert dv_meta["x-kubernetes-preserve-unknown-fields"] is True
    assert _at(schema, "spec.dataVolumeTemplates[].spec.source.http.url")["type"] == "string"
    memory = _at(schema, "spec.template.spec.domain.resources.requests")["additionalProperties"]
    assert memory["x-kubernetes-int-or-string"] is True
    assert "pattern" in memory
    disk = _at(schema, "spec.template.spec.volumes[].containerDisk")
    assert "image" in disk["required"]


def test_virtual_machine_instance_has_no_status_subresource(
    by_name: dict[str, dict[str, Any]],
) -> None:
    crd = by_name["virtualmachineinstances.kubevirt.io"]
    assert crd["spec"]["names"]["shortNames"] == ["vmi", "vmis"]
    assert all("subresources" not in v for v in crd["spec"]["versions"])
    assert "domain" in _at(_storage_schema(crd), "spec")["properties"]


def test_instancetypes_and_preferences(by_name: dict[str, dict[str, Any]]) -> None:
    scopes = {
        "virtualmachineinstancetypes": "Namespaced",
        "virtualmachineclusterinstancetypes": "Cluster",
        "virtualmachinepreferences": "Namespaced",
        "virtualmachineclusterpreferences": "Cluster",
    }
    for plural, scope in scopes.items():
        crd = by_name[f"{plural}.instancetype.kubevirt.io"]
        assert crd["spec"]["scope"] == scope
        assert [v["name"] for v in crd["spec"]["versions"]] == ["v1beta1"]
    instancetype = _storage_schema(by_name["virtualmachineinstancetypes.instancetype.kubevirt.io"])
    assert set(_at(instancetype, "spec")["required"]) == {"cpu", "memory"}


def test_data_volume(by_name: dict[str, dict[str, Any]]) -> None:
    crd = by_name["datavolumes.cdi.kubevirt.io"]
    names = crd["spec"]["names"]
    assert (names["shortNames"], names["categories"]) == (["dv", "dvs"], ["all"])
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    schema = _storage_schema(crd)
    http = _at(schema, "spec.source.http")
    assert http["properties"]["url"]["type"] == "string"
    assert http["required"] == ["url"]
    storage = _at(schema, "spec.storage.resources.requests")["additionalProperties"]
    assert storage["x-kubernetes-int-or-string"] is True


def test_data_source_has_no_status_subresource(by_name: dict[str, dict[str, Any]]) -> None:
    crd = by_name["datasources.cdi.kubevirt.io"]
    assert crd["spec"]["names"]["shortNames"] == ["das"]
    assert "subresources" not in crd["spec"]["versions"][0]


def test_published_yaml_crds_are_kept(by_name: dict[str, dict[str, Any]]) -> None:
    for name in (
        "volumesnapshots.snapshot.storage.k8s.io",
        "network-attachment-definitions.k8s.cni.cncf.io",
        "clusters.cluster.x-k8s.io",
        "kubevirtmachinetemplates.infrastructure.cluster.x-k8s.io",
    ):
        crd = by_name[name]
        assert "status" not in crd
        assert thirdparty.SOURCE_ANNOTATION not in crd["metadata"].get("annotations", {})
        assert _storage_schema(crd)["properties"]["spec"]["type"] == "object"


def test_fallback_when_the_directory_is_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=thirdparty.__name__):
        crds = upstream_crds(tmp_path / "no-such-dir")
    assert "not found" in caplog.text and thirdparty.ENV_VAR in caplog.text
    assert [c["metadata"]["name"] for c in crds] == [k.crd_name for k in CATALOGUE]
    for crd, kind in zip(crds, CATALOGUE, strict=True):
        for version in crd["spec"]["versions"]:
            assert version["schema"]["openAPIV3Schema"] == {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
            }
            assert ("subresources" in version) == kind.status
    assert "virtualmachines.kubevirt.io" in {c["metadata"]["name"] for c in crds}


def test_env_var_points_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(thirdparty.ENV_VAR, str(tmp_path / "elsewhere"))
    assert thirdparty.third_party_dir() == tmp_path / "elsewhere"
    crds = upstream_crds()
    assert all(
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["type"] == "object" for c in crds
    )
    assert "permissive" in crds[0]["metadata"]["annotations"][thirdparty.SOURCE_ANNOTATION]


def test_default_directory_is_beside_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(thirdparty.ENV_VAR, raising=False)
    repo = Path(thirdparty.__file__).resolve().parents[2]
    assert thirdparty.third_party_dir() == repo.parent / "shared" / "third_party"


def test_partial_directory_mixes_real_and_permissive(tmp_path: Path) -> None:
    (tmp_path / "crds").mkdir()
    (tmp_path / "crds" / "one.yaml").write_text(
        "---\n---\n"
        + json.dumps(upstream_crds()[-1])  # any published CRD; JSON is YAML
        + "\n"
    )
    crds = upstream_crds(tmp_path)
    names = [c["metadata"]["name"] for c in crds]
    assert names == [k.crd_name for k in CATALOGUE]
    vm = crds[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert vm == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


# The converter on small, made-up documents.

_SWAGGER: dict[str, Any] = {
    "v1.Thing": {
        "description": "A thing.",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": "#/definitions/k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": {"description": "The spec.", "default": {}, "$ref": "#/definitions/v1.Spec"},
        },
    },
    "v1.Spec": {
        "type": "object",
        "properties": {
            "node": {"$ref": "#/definitions/v1.Node"},
            "when": {"type": ["string", "null"], "format": "date-time"},
            "port": {"type": ["string", "number"]},
            "size": {"$ref": "#/definitions/resource.Quantity"},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
            "both": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            },
            "byName": {
                "type": "array",
                "items": {"$ref": "#/definitions/v1.Named"},
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "x-kubernetes-patch-merge-key": "name",
            },
            "byOptional": {
                "type": "array",
                "items": {"$ref": "#/definitions/v1.Named"},
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["optional"],
            },
            "template": {"$ref": "#/definitions/v1.Template"},
            "raw": {"$ref": "#/definitions/runtime.RawExtension"},
            "mode": {"type": "string", "enum": ["A", "B"]},
            "count": {"type": "integer", "format": "byte"},
        },
    },
    "v1.Node": {
        "type": "object",
        "properties": {"next": {"$ref": "#/definitions/v1.Node"}, "value": {"type": "integer"}},
    },
    "v1.Named": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "optional": {"type": "string"}},
    },
    "v1.Template": {
        "type": "object",
        "properties": {"metadata": {"$ref": "#/definitions/v1.ObjectMeta"}},
    },
    "v1.ObjectMeta": {"type": "object", "properties": {"name": {"type": "string"}}},
    "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"type": "object"},
    "resource.Quantity": {"type": "string"},
    "runtime.RawExtension": {"type": "object"},
}


def test_converter_on_a_small_document() -> None:
    schema = SchemaConverter(_SWAGGER).crd_schema("v1.Thing")
    assert list(_structural_errors(schema, "thing")) == []
    assert "$ref" not in set(_keys(schema))
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["required"] == ["spec"]
    spec = schema["properties"]["spec"]
    assert spec["description"] == "The spec."
    assert "default" not in spec
    fields = spec["properties"]
    # Recursion is cut off with an object that keeps what it is given.
    assert fields["node"]["properties"]["next"] == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert fields["when"] == {"type": "string", "format": "date-time", "nullable": True}
    assert fields["port"]["x-kubernetes-int-or-string"] is True
    assert fields["size"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert fields["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert "additionalProperties" not in fields["both"]
    assert fields["byName"]["x-kubernetes-list-map-keys"] == ["name"]
    assert "x-kubernetes-patch-merge-key" not in fields["byName"]
    # A key that is neither required nor defaulted would make the apiserver refuse the CRD.
    assert "x-kubernetes-list-type" not in fields["byOptional"]
    assert fields["template"]["properties"]["metadata"]["x-kubernetes-preserve-unknown-fields"]
    assert fields["raw"]["x-kubernetes-preserve-unknown-fields"] is True
    assert fields["mode"]["enum"] == ["A", "B"]
    assert fields["count"] == {"type": "integer"}


def test_converter_descriptions_can_be_cut_below_a_depth() -> None:
    schema = SchemaConverter(_SWAGGER, description_depth=0).crd_schema("v1.Thing")
    assert schema["description"] == "A thing."
    assert "description" not in schema["properties"]["spec"]


def test_converter_refuses_what_has_no_structural_form() -> None:
    with pytest.raises(SchemaError):
        SchemaConverter({"v1.X": {"type": ["string", "boolean"]}}).crd_schema("v1.X")
    dangling = {"type": "object", "properties": {"a": {"$ref": "#/definitions/v1.Y"}}}
    with pytest.raises(SchemaError):
        SchemaConverter({"v1.X": dangling}).crd_schema("v1.X")
