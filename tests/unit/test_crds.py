"""The CRDs, the chart's CRDs and docs/api.md are exactly what the models generate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from operators import codegen
from operators.catalogue import KINDS
from operators.common.crdgen import crd

ROOT = Path(__file__).resolve().parents[2]


def test_generated_files_match_the_models() -> None:
    stale = [str(p.relative_to(ROOT)) for p in codegen.stale_files()]
    assert stale == [], f"run `make crds`: {stale}"


def _walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}[*]")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schema_is_structural_and_explained(kind) -> None:
    root = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(root):
        assert "$ref" not in node, path
        assert node.get("type") or node.get("x-kubernetes-int-or-string"), path
        if path.startswith((".spec", ".status")):
            assert node.get("description") or path.endswith("[]"), f"{path} has no description"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_conventions(kind) -> None:
    spec = crd(kind)["spec"]
    version = spec["versions"][0]
    assert "ostack" in spec["names"]["categories"]
    assert spec["names"]["shortNames"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert ({"Age"} if kind.record else {"Ready", "Age"}) <= columns
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert "observedGeneration" in status


def test_every_example_validates_against_its_model() -> None:
    by_kind = {(k.api_version, k.kind): k for k in KINDS}
    seen = set()
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            kind = by_kind[(obj["apiVersion"], obj["kind"])]
            kind.parse_spec(obj)
            seen.add(kind.kind)
    # Records are written by the controllers only, so there is nothing to show a tenant.
    assert seen == {k.kind for k in KINDS if not k.record}, "examples/ should show every kind"
