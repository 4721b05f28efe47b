"""Reply models: what the handlers build their replies from, and what the OpenAPI document shows.

They live apart from the request models in ``models.py`` because they describe the HTTP surface
(pages, acknowledgements, errors), not the rows of the schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from ..models import Ack, AgentLog, SystemLog


class IngestReply(BaseModel):
    """201 of every ingest route: one ack per item, in the order posted."""

    count: int
    items: list[Ack]


class HistoryItem(BaseModel):
    kind: Literal["agent_log", "system_log"]
    seq: int
    data: AgentLog | SystemLog


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    has_more: bool
    next_after: int | None
    next_before: int | None
    head_seq: int
    floor_seq: int


class VolumeBucket(BaseModel):
    start: str  # ISO-8601 UTC; the bucket covers [start, start + bucket_s)
    counts: dict[str, int]  # level -> events; levels without events are left out


class Volume(BaseModel):
    """Events per level over time; every bucket of the range is listed, empty ones too."""

    buckets: list[VolumeBucket]
    bucket_s: int
    since: str
    until: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class Error(BaseModel):
    error: ErrorBody


class EntityList(BaseModel):
    items: list[dict[str, Any]]
    count: int


class Ticket(BaseModel):
    ticket: str
    expires_in: float


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    problems: list[str]
    epoch: str
    head_seq: int
    floor_seq: int
    writer_queue: int
    subscribers: int


class CompatReply(BaseModel):
    """The orchestrator_3_stream replies: ``status`` plus the endpoint's own keys."""

    status: str
    model_config = {"extra": "allow"}
