"""What the API server needs to know about a kind besides its schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from operators.common.schema import ApiModel, Rule
from operators.common.status import Status

CATEGORY = "ostack"
VERSION = "v1alpha1"


@dataclass(frozen=True)
class Column:
    """A `kubectl get` column."""

    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str = ""
    priority: int = 0
    """0 shows in `kubectl get`; 1 only with `-o wide`."""


READY = Column(
    "Ready",
    '.status.conditions[?(@.type=="Ready")].status',
    description="Whether the object is what its spec asks for",
)
PHASE = Column("Phase", ".status.phase", description="The phase, in OpenStack's vocabulary")
AGE = Column("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class Kind:
    """One ostack kind: its names, scope, models and how `kubectl get` shows it."""

    group: str
    kind: str
    doc: str
    """What the kind is, for `kubectl explain` and the API reference."""
    plural: str
    short_names: tuple[str, ...]
    spec: type[ApiModel]
    status: type[Status]
    columns: tuple[Column, ...]
    namespaced: bool = True
    rules: tuple[Rule, ...] = field(default=())
    """Rules on the whole object, for what needs `metadata` (e.g. the name)."""
    record: bool = False
    """A record the controllers keep (an address allocation), not something reconciled:
    it has no Ready condition and tenants may only read it."""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{VERSION}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    def parse_spec(self, obj: dict[str, Any]) -> ApiModel:
        """The object's spec as a model, after the rules on the whole object.

        Raises ValueError (pydantic's ValidationError is one) with the rule's message.
        """
        for rule in self.rules:
            if rule.check is not None and not rule.check(obj):
                raise ValueError(rule.message)
        return self.spec.model_validate(obj.get("spec", {}))
