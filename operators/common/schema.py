"""Building blocks every kind's API model is made of.

The pydantic models are the single source of truth for the API: the CRDs, `kubectl
explain` text and docs/api.md are generated from them. Everything a CRD schema needs
beyond plain JSON Schema (CEL rules, list-map keys, int-or-string) is attached here, in
one vocabulary, so each service's `api.py` reads as a description of its API and nothing
else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from kubernetes.utils.quantity import parse_quantity
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# Kubernetes' own quantity grammar (k8s.io/apimachinery resource.Quantity), unsigned: a
# size, a count of bytes or a RAM amount is never negative.
QUANTITY_PATTERN = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _quantity(value: Any) -> str:
    # bool is an int to Python, but `size: true` is a mistake, not one byte.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 10Gi, 512Mi, 1G)")
    text = str(value)
    try:
        amount = parse_quantity(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 10Gi, 512Mi, 1G)") from None
    if amount < 0:
        raise ValueError(f"{text!r} must not be negative")
    return text


Quantity = Annotated[
    str,
    BeforeValidator(_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes quantity (`10Gi`, `512Mi`, `1G`, or a plain number of bytes)."""


def quantity_value(quantity: str | int) -> Decimal:
    """The numeric value of a quantity, for comparisons (`1Gi` > `1000Mi`)."""
    return parse_quantity(quantity)


def bytes_quantity(amount: Decimal) -> str:
    """A number of bytes as a user reads it: `40Gi` rather than 42949672960."""
    for unit, scale in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if amount and amount % scale == 0:
            return f"{int(amount // scale)}{unit}"
    return str(int(amount))


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[
    datetime,
    PlainSerializer(_rfc3339, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An RFC 3339 timestamp, serialised in UTC with a `Z` as Kubernetes writes them."""

PublicKey = Annotated[str, Field(min_length=1, max_length=8192)]
"""An SSH public key (`ssh-ed25519 AAAA... user@host`)."""

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
"""The name of a Kubernetes object in the same namespace (a DNS label)."""


@dataclass(frozen=True)
class Rule:
    """One validation rule of an object, stated once for both places it is enforced.

    `cel` goes into the CRD (`x-kubernetes-validations`), so the apiserver refuses bad
    input before any controller sees it. `check` is the same rule in Python, so the
    models refuse the same input in unit tests, in admission and when a controller parses
    an object that predates the rule. A rule that compares with the previous version of
    the object (it uses `oldSelf`) states that as `transition`.
    """

    cel: str
    message: str
    check: Callable[[Any], bool] | None = None
    transition: Callable[[Any, Any], bool] | None = None
    field_path: str | None = None

    def as_crd_validation(self) -> dict[str, str]:
        rule = {"rule": self.cel, "message": self.message}
        if self.field_path:
            rule["fieldPath"] = self.field_path
        return rule


class ApiModel(BaseModel):
    """Base of every spec and status model: camelCase on the wire, no unknown fields.

    Field docstrings are the field descriptions, which become `kubectl explain` text.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=False,
    )

    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        for rule in self.rules:
            if rule.check is not None and not rule.check(self):
                raise ValueError(rule.message)
        return self

    def check_update(self, old: ApiModel) -> list[str]:
        """Messages of the transition rules that going from `old` to `self` breaks."""
        return [
            rule.message
            for rule in self.rules
            if rule.transition is not None and not rule.transition(old, self)
        ]

    def to_k8s(self) -> dict[str, Any]:
        """The object as it is written to the Kubernetes API (camelCase, no nulls)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.rules:
            target = handler.resolve_ref_schema(schema)
            target["x-kubernetes-validations"] = [r.as_crd_validation() for r in cls.rules]
        return schema


def list_map(*keys: str) -> dict[str, Any]:
    """Schema extras for a list whose items are identified by `keys` (merge by key)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


LIST_SET: dict[str, Any] = {"x-kubernetes-list-type": "set"}
"""Schema extras for a list of unique scalars."""


def exactly_one(*fields: str) -> str:
    """CEL: exactly one of the optional `fields` is set."""
    present = ", ".join(f"has(self.{f})" for f in fields)
    return f"[{present}].filter(x, x).size() == 1"


def at_most_one(*fields: str) -> str:
    """CEL: at most one of the optional `fields` is set."""
    present = ", ".join(f"has(self.{f})" for f in fields)
    return f"[{present}].filter(x, x).size() <= 1"


def count_set(model: BaseModel, *fields: str) -> int:
    """How many of `fields` (Python names) are set on `model`; the twin of the CEL above."""
    return sum(getattr(model, f) is not None for f in fields)
