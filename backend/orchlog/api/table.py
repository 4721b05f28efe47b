"""The vocabulary of the route table: what one route declares, and how a request finds its route.

Every fact about a route — its path, its methods, the scope it needs, its documentation, its
metric label — is declared once, in ``api/routes.py``, with the types below. Everything else is
derived from that one table: the Starlette routes, authorization (which fails closed: a method or
path that is not in the table is refused before any handler runs), the OpenAPI document and the
metric labels. This module holds no routes and imports no handlers, so the table, the gate and
the document builder can all import it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from starlette.convertors import Convertor
from starlette.routing import compile_path

Scope = Literal["open", "read", "ingest", "admin"]
SCOPES: tuple[Scope, ...] = ("open", "read", "ingest", "admin")
Method = Literal["GET", "POST", "PATCH", "DELETE", "WEBSOCKET"]
UNMATCHED = "unmatched"  # the one metric label every path outside the table shares


@dataclass(frozen=True)
class Param:
    """A query (or path) parameter, typed so the document says what the handler parses."""

    name: str
    description: str
    type: Literal["string", "integer", "boolean"] = "string"
    minimum: int | None = None
    maximum: int | None = None
    where: Literal["query", "path", "header"] = "query"
    required: bool = False
    enum: tuple[str, ...] = ()
    format: str | None = None

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.enum:
            out["enum"] = list(self.enum)
        if self.format:
            out["format"] = self.format
        return out


@dataclass(frozen=True)
class Body:
    """A request body: a model (or a raw schema) per media type."""

    model: type[BaseModel] | str | None = None  # a model, or the name of a schema in components
    many: bool = False  # an object, an array of them, or NDJSON lines
    media: tuple[str, ...] = ("application/json",)
    description: str = ""


@dataclass(frozen=True)
class Reply:
    status: int
    description: str
    model: type[BaseModel] | str | None = None
    media: str = "application/json"


@dataclass(frozen=True)
class Operation:
    """One method of one route."""

    method: Method
    endpoint: Callable[..., Any]
    scope: Scope
    operation_id: str
    summary: str
    reply: Reply
    params: tuple[Param, ...] = ()
    body: Body | None = None
    errors: tuple[int, ...] = ()
    # server-wide data (global counters, the server's working directory): refused to agent-bound tokens
    unbound_only: bool = False
    # a browser may open it as a stream (WebSocket, EventSource): its Origin is always checked
    stream: bool = False


@dataclass(frozen=True)
class Route:
    path: str
    operations: tuple[Operation, ...]
    name: str | None = None
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    convertors: dict[str, Convertor[Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        methods = [op.method for op in self.operations]
        if len(set(methods)) != len(methods):
            raise ValueError(f"route {self.path}: a method is declared twice")
        for op in self.operations:
            if op.scope not in SCOPES:
                raise ValueError(f"route {op.method} {self.path}: scope {op.scope!r} is not one of {SCOPES}")
        regex, _, convertors = compile_path(self.path)
        object.__setattr__(self, "regex", regex)
        object.__setattr__(self, "convertors", convertors)

    def params(self, path: str) -> dict[str, Any]:
        """The path parameters of a path this route matched, converted as Starlette would."""
        found = self.regex.match(path)
        if found is None or not self.convertors:
            return {}
        return {name: self.convertors[name].convert(value) for name, value in found.groupdict().items()}

    def operation(self, method: str) -> Operation | None:
        """The operation a request method stands for: HEAD is GET; a WebSocket is its own."""
        wanted = "GET" if method == "HEAD" else method
        return next((op for op in self.operations if op.method == wanted), None)


@dataclass(frozen=True)
class Match:
    """What a request resolved to. ``route`` None: no such path; ``operation`` None: no such method."""

    route: Route | None
    operation: Operation | None
    path: str = ""

    @property
    def params(self) -> dict[str, Any]:
        return self.route.params(self.path) if self.route is not None else {}

    @property
    def label(self) -> str:
        return self.route.path if self.route is not None else UNMATCHED


class Table:
    """The routes in order (the first whose path matches wins, as in Starlette's router)."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        ids = [op.operation_id for r in self.routes for op in r.operations]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"operationId declared twice: {duplicated}")
        # most paths have no parameters: a dict finds them without trying every regex
        # (unless a route with a parameter declared before it matches it too, and so shadows it)
        self._static: dict[str, Route] = {}
        for i, route in enumerate(self.routes):
            if "{" in route.path or route.path in self._static:
                continue
            if not any("{" in r.path and r.regex.match(route.path) for r in self.routes[:i]):
                self._static[route.path] = route

    def resolve(self, method: str, path: str) -> Match:
        route = self._static.get(path)
        if route is None:
            route = next((r for r in self.routes if r.regex.match(path)), None)
        if route is None:
            return Match(None, None)
        return Match(route, route.operation(method), path)

    def __iter__(self) -> Any:
        return iter(self.routes)
