"""Turns the pydantic API models into CustomResourceDefinitions.

pydantic writes JSON Schema (2020-12, with `$defs`, `$ref` and `anyOf` for optionals);
the apiserver wants a *structural* OpenAPI v3 schema: every node typed, nothing referenced,
no nulls. This module does that translation and nothing else.
"""

from __future__ import annotations

import copy
from typing import Any

from operators.common.kinds import CATEGORY, VERSION, Kind

# JSON Schema keywords a CRD schema accepts and that our models use.
_KEPT = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "items",
    "additionalProperties",
    "anyOf",
}


class SchemaError(ValueError):
    """A model cannot be expressed as a structural CRD schema."""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in node:
        return node
    target = defs[node["$ref"].rsplit("/", 1)[-1]]
    # Keywords beside a $ref (a field's description) win over the referenced model's.
    merged = {**_resolve(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
    return merged


def _structural(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        # `X | None` is how pydantic spells an optional field; absence is our null.
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise SchemaError(f"{path}: unions other than `X | None` have no CRD form")
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**_resolve(branches[0], defs), **outer}
    if "const" in node:
        node = {**node, "enum": [node.pop("const")]}

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            out[key] = copy.deepcopy(value)
        elif key in _KEPT:
            out[key] = value
    if out.get("default") is None or out.get("default") == []:
        out.pop("default", None)
    if "description" not in out:
        raise SchemaError(f"{path}: no description (write a docstring for it)")
    out["description"] = " ".join(out["description"].split())

    if "properties" in out:
        out["properties"] = {
            name: _structural(child, defs, f"{path}.{name}")
            for name, child in out["properties"].items()
        }
        out.setdefault("type", "object")
        if not out.get("required"):
            out.pop("required", None)
    if isinstance(out.get("additionalProperties"), dict):
        # A map's values are described by the map's own description.
        child = {"description": out["description"], **out["additionalProperties"]}
        out["additionalProperties"] = _structural(child, defs, f"{path}[*]")
    elif out.get("additionalProperties") is False:
        del out["additionalProperties"]
    if "items" in out:
        child = {"description": out["description"], **out["items"]}
        out["items"] = _structural(child, defs, f"{path}[]")
        if out["items"]["description"] == out["description"]:
            del out["items"]["description"]
    if out.get("type") is None and not out.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"{path}: no type")
    return out


def model_schema(model: type, path: str) -> dict[str, Any]:
    """The structural schema of one pydantic model, with its CEL rules."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    raw.pop("title", None)
    return _structural(raw, defs, path)


def crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    spec = model_schema(kind.spec, "spec")
    status = model_schema(kind.status, "status")
    root: dict[str, Any] = {
        "type": "object",
        "description": kind.doc,
        "properties": {
            "apiVersion": {"type": "string", "description": "The API version (group/version)."},
            "kind": {"type": "string", "description": "The kind of object."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        # spec is always required: a default `{}` would be checked against the rules
        # without the defaults inside it, and an empty spec says nothing anyway.
        "required": ["spec"],
    }
    if kind.rules:
        root["x-kubernetes-validations"] = [r.as_crd_validation() for r in kind.rules]
    columns = [
        {
            "name": c.name,
            "type": c.type,
            "jsonPath": c.json_path,
            **({"description": c.description} if c.description else {}),
            **({"priority": c.priority} if c.priority else {}),
        }
        for c in kind.columns
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/part-of": "ostack"},
        },
        "spec": {
            "group": kind.group,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }
