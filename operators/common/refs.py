"""References from one ostack object to another."""

from __future__ import annotations

from pydantic import Field

from operators.common.schema import DNS_LABEL_PATTERN, ApiModel, Name


class LocalRef(ApiModel):
    """A reference to an object in the same Project."""

    name: Name
    """The object's name."""


class ProjectRef(ApiModel):
    """A reference to an object in this Project or, where the object allows it (a public
    or shared Image, a shared Network), in another Project."""

    name: Name
    """The object's name."""
    project: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL_PATTERN)
    """The Project that holds the object; defaults to this object's own Project."""


class SecretKeyRef(ApiModel):
    """A key of a Secret in the same namespace."""

    name: Name
    """The Secret's name."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """The key within the Secret."""
