"""Models every area shares: a page of items, a message."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = Field(None, description="null on the last page")


class Message(BaseModel):
    detail: str


#: The OpenAPI description of a route that answers with one JPEG image.
JPEG_RESPONSE = {200: {"content": {"image/jpeg": {}}, "description": "a JPEG image"}}
