"""The one exception tree of orchlog.

Every error a client can cause maps to one HTTP status and one JSON shape
(``{"error": {"code", "message", "details"}}``) in ``api/app.py``; nothing else leaks out::

    OrchlogError
    ├── BadRequest              400  malformed JSON / NDJSON, bad query parameter
    │   └── BadParameter        400  a query parameter (history, stream) that does not parse
    ├── Unauthorized            401  no, unknown or revoked token
    ├── Forbidden               403  the token lacks the scope or the agent
    ├── NotFound                404
    ├── PayloadTooLarge         413  body or batch over the configured limits
    ├── UnsupportedMediaType    415
    ├── ValidationFailed        422  an item fails its model, or names an unknown agent
    ├── RateLimited             429  ingest quota or stream limit (with Retry-After)
    ├── Overloaded              503  writer queue full or database locked (with Retry-After)
    └── SchemaError                  database and code disagree on the schema (not an HTTP error)
"""

from __future__ import annotations

from typing import Any


class OrchlogError(Exception):
    """Base of every error orchlog raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class BadRequest(OrchlogError):
    status = 400
    code = "bad_request"


class BadParameter(BadRequest):
    code = "bad_parameter"

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"query parameter {name!r}: {message}", details=[{"field": name, "message": message}])
        self.name = name


class Unauthorized(OrchlogError):
    status = 401
    code = "unauthorized"


class Forbidden(OrchlogError):
    status = 403
    code = "forbidden"


class RateLimited(OrchlogError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(OrchlogError):
    status = 404
    code = "not_found"


class PayloadTooLarge(OrchlogError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(OrchlogError):
    status = 415
    code = "unsupported_media_type"


class ValidationFailed(OrchlogError):
    """``details`` is a list of ``{"index", "field", "message", "type"}`` (index absent for one object)."""

    status = 422
    code = "validation_failed"


class Overloaded(OrchlogError):
    status = 503
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SchemaError(OrchlogError):
    code = "schema_error"
