"""Structural CRD schemas from Swagger 2.0 (OpenAPI v2) definitions.

KubeVirt and CDI publish their API only as swagger; their operators build the CRDs at run
time. This module makes the same translation for the dev cluster, so that the apiserver
prunes and (with `fieldValidation=Strict`) rejects unknown fields as a real cluster does:

- every `$ref` is inlined; a definition that refers to itself is cut off with an object
  that keeps unknown fields;
- every node gets a `type`; `resource.Quantity` and `intstr.IntOrString` become
  `x-kubernetes-int-or-string`, a `[T, "null"]` type becomes `T` + `nullable`;
- an embedded `ObjectMeta` (a template's metadata) keeps unknown fields, the root's is
  `{type: object}` (the apiserver validates that one itself);
- what CRD schemas do not accept or what would change behaviour is left out: the zero
  `default`s kube-openapi writes, `x-kubernetes-patch-*`, `x-kubernetes-unions`, and list
  or map markers the apiserver would refuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Schema = dict[str, Any]

#: The grammar of `resource.Quantity`, as the apiserver's own CRDs spell it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

# apimachinery definitions with a meaning of their own, under both spellings: KubeVirt's
# swagger names them by Go package path, CDI's by the last package element. (KubeVirt's
# own `v1` package has no type of these names.)
_OBJECT_META = frozenset({"k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta", "v1.ObjectMeta"})
_QUANTITY = frozenset({"k8s.io.apimachinery.pkg.api.resource.Quantity", "resource.Quantity"})
_INT_OR_STRING = frozenset(
    {"k8s.io.apimachinery.pkg.util.intstr.IntOrString", "intstr.IntOrString"}
)
_TIME = frozenset(
    {
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time",
        "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime",
        "v1.Time",
        "v1.MicroTime",
    }
)
_FREE_FORM = frozenset(
    {
        "k8s.io.apimachinery.pkg.runtime.RawExtension",
        "runtime.RawExtension",
        "k8s.io.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    }
)

# Validation keywords copied as they are (JSONSchemaProps fields a structural schema may
# carry). `uniqueItems` is not among them: the apiserver refuses `uniqueItems: true`.
_COPIED = (
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
    "minProperties",
    "maxProperties",
)
_SCALARS = frozenset({"string", "integer", "number", "boolean"})
_FORMATS = {"integer": {"int32", "int64"}, "number": {"float", "double"}}


class SchemaError(ValueError):
    """A swagger definition has no structural CRD form."""


def int_or_string(description: str | None = None) -> Schema:
    """A node that takes an integer or a string (IntOrString, Quantity)."""
    node: Schema = {
        "x-kubernetes-int-or-string": True,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
    }
    if description:
        node["description"] = description
    return node


def free_form(description: str | None = None) -> Schema:
    """An object whose content the apiserver neither prunes nor validates."""
    node: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if description:
        node["description"] = description
    return node


class SchemaConverter:
    """Converts the definitions of one swagger document.

    `preserve_unknown` names definitions that upstream marks to keep unknown fields
    (`+kubebuilder:pruning:PreserveUnknownFields`), a marker the swagger does not carry.
    Descriptions deeper than `description_depth` levels below the root are left out
    (None keeps them all), to keep big CRDs under the apiserver's size limit.
    """

    def __init__(
        self,
        definitions: Mapping[str, Schema],
        *,
        preserve_unknown: Iterable[str] = (),
        description_depth: int | None = None,
    ) -> None:
        self._definitions = definitions
        self._preserve_unknown = frozenset(preserve_unknown)
        self._description_depth = description_depth

    def crd_schema(self, definition: str) -> Schema:
        """The `openAPIV3Schema` of the kind described by `definition`."""
        root = self._named(definition, (), 0)
        if root.get("type") != "object" or "properties" not in root:
            raise SchemaError(f"{definition}: not an object with properties")
        if "metadata" in root["properties"]:
            root["properties"]["metadata"] = {"type": "object"}
        return root

    def _describe(self, node: Schema, description: Any, depth: int) -> None:
        if not isinstance(description, str) or not description.strip():
            return
        if self._description_depth is not None and depth > self._description_depth:
            return
        node["description"] = description.strip()

    def _convert(self, node: Schema, stack: tuple[str, ...], depth: int) -> Schema:
        if "$ref" not in node:
            return self._inline(node, stack, depth)
        name = node["$ref"].rsplit("/", 1)[-1]
        out = self._named(name, stack, depth)
        # The field's own description is more specific than its type's.
        if "description" in node:
            out.pop("description", None)
            self._describe(out, node["description"], depth)
        if node.get("nullable"):
            out["nullable"] = True
        return out

    def _named(self, name: str, stack: tuple[str, ...], depth: int) -> Schema:
        if name in _OBJECT_META:
            # An embedded ObjectMeta (a template's) is kept as given, as upstream does.
            return {**free_form(), "nullable": True}
        if name in _QUANTITY:
            return {**int_or_string(), "pattern": QUANTITY_PATTERN}
        if name in _INT_OR_STRING:
            return int_or_string()
        if name in _TIME:
            return {"type": "string", "format": "date-time"}
        if name in _FREE_FORM or name in stack:
            return free_form()
        try:
            definition = self._definitions[name]
        except KeyError:
            raise SchemaError(f"no definition {name!r} (from {' > '.join(stack)})") from None
        out = self._inline(definition, (*stack, name), depth)
        if name in self._preserve_unknown:
            out["type"] = "object"
            out["x-kubernetes-preserve-unknown-fields"] = True
        return out

    def _inline(self, node: Schema, stack: tuple[str, ...], depth: int) -> Schema:
        where = " > ".join(stack) or "<root>"
        nullable = bool(node.get("nullable"))
        kind = node.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"]
            nullable = nullable or len(kinds) < len(kind)
            if "string" in kinds and {"integer", "number"} & set(kinds):
                kind = "int-or-string"
            elif len(kinds) == 1:
                kind = kinds[0]
            else:
                raise SchemaError(f"{where}: type {kind} has no structural form")
        if node.get("format") == "int-or-string":
            kind = "int-or-string"
        if kind is None:
            if "properties" in node or "additionalProperties" in node:
                kind = "object"
            elif "items" in node:
                kind = "array"

        out: Schema
        if kind == "int-or-string":
            out = int_or_string()
        elif kind is None:
            out = free_form()
        elif kind == "object":
            out = self._object(node, stack, depth)
        elif kind == "array":
            out = self._array(node, stack, depth)
        elif kind in _SCALARS:
            out = {"type": kind}
            fmt = node.get("format")
            if fmt and (kind == "string" or fmt in _FORMATS.get(kind, ())):
                out["format"] = fmt
        else:
            raise SchemaError(f"{where}: unknown type {kind!r}")

        self._describe(out, node.get("description"), depth)
        if nullable:
            out["nullable"] = True
        if node.get("enum") and kind in _SCALARS:
            out["enum"] = list(node["enum"])
        for key in _COPIED:
            if key in node:
                out[key] = node[key]
        return out

    def _object(self, node: Schema, stack: tuple[str, ...], depth: int) -> Schema:
        out: Schema = {"type": "object"}
        properties = node.get("properties")
        extra = node.get("additionalProperties")
        if properties:
            # A structural schema may not have both; the named fields are the contract.
            out["properties"] = {
                name: self._convert(child, stack, depth + 1) for name, child in properties.items()
            }
            required = [name for name in node.get("required", ()) if name in properties]
            if required:
                out["required"] = required
        elif isinstance(extra, dict):
            out["additionalProperties"] = self._convert(extra, stack, depth + 1)
        elif extra is True:
            out["x-kubernetes-preserve-unknown-fields"] = True
        if node.get("x-kubernetes-map-type") in ("atomic", "granular"):
            out["x-kubernetes-map-type"] = node["x-kubernetes-map-type"]
        return out

    def _array(self, node: Schema, stack: tuple[str, ...], depth: int) -> Schema:
        items = node.get("items")
        if isinstance(items, dict):
            converted = self._convert(items, stack, depth + 1)
        else:
            converted = free_form()
        out: Schema = {"type": "array", "items": converted}
        list_type = node.get("x-kubernetes-list-type")
        if list_type == "atomic" or (list_type == "set" and converted.get("type") in _SCALARS):
            out["x-kubernetes-list-type"] = list_type
        elif list_type == "map":
            keys = node.get("x-kubernetes-list-map-keys") or []
            if keys and _usable_map_keys(converted, keys):
                out["x-kubernetes-list-type"] = "map"
                out["x-kubernetes-list-map-keys"] = list(keys)
        return out


def _usable_map_keys(items: Schema, keys: list[str]) -> bool:
    """Whether the apiserver accepts `keys` as list-map keys of `items`.

    They must be scalar fields of an object item, required (we keep no defaults), and
    not nullable.
    """
    if items.get("type") != "object" or items.get("x-kubernetes-preserve-unknown-fields"):
        return False
    properties = items.get("properties", {})
    required = set(items.get("required", ()))
    return all(
        key in required
        and properties.get(key, {}).get("type") in _SCALARS
        and not properties[key].get("nullable")
        for key in keys
    )
