"""CRUD-lite for orchestrator agents, agents and prompts; every write goes through the writer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from ..errors import BadParameter, Forbidden, NotFound
from ..filters import parse_int
from ..models import AgentCreate, EntityPatch, OrchestratorAgentCreate, PromptCreate, canonical_uuid
from ..store.base import ArchiveAgent, CreateAgent, CreateOrchestrator, CreatePrompt, UpdateEntity
from ..validation import validate_one
from .body import read_items
from .responses import JSON, runtime
from .security import principal_of

LIST_FILTERS = {
    "orchestrator_agents": ("status", "session_id", "archived"),
    "agents": ("orchestrator_agent_id", "status", "name", "session_id", "adw_id", "archived"),
    "prompts": ("agent_id", "task_slug", "author", "session_id"),
}


async def _one_object(request: Request) -> Any:
    """The one JSON object a create or update carries; each write costs one event of the ingest
    quota, so a runaway ingest token is held back on the entity routes too."""
    rt = runtime(request)
    items, single = await read_items(request, rt.limits)
    if not single:
        raise BadParameter("body", "send one JSON object")
    rt.quotas.charge(principal_of(request), 1)
    return items[0]


def _ident(request: Request) -> str:
    raw = request.path_params["id"]
    try:
        return str(canonical_uuid(raw))
    except ValueError:
        raise NotFound(f"{raw!r} is not a valid id") from None


def _unbound(request: Request) -> bool:
    principal = principal_of(request)
    return not principal.bound or principal.has("admin")


async def bound_orchestrators(request: Request) -> frozenset[str]:
    """The orchestrators of an agent-bound token's agents (the only ones it may see)."""
    store = runtime(request).store
    out = set()
    for agent_id in principal_of(request).agent_ids:
        agent = await store.get_entity("agents", agent_id)
        if agent is not None:
            out.add(str(agent["orchestrator_agent_id"]))
    return frozenset(out)


async def _visibility(request: Request, table: str) -> Callable[[dict[str, Any]], bool]:
    """Agent-bound tokens see only their own agents, the prompts of those agents, and the
    orchestrators those agents belong to (an orchestrator row holds a system prompt)."""
    if _unbound(request):
        return lambda row: True
    agents = principal_of(request).agent_ids
    if table == "agents":
        return lambda row: row.get("id") in agents
    if table == "prompts":
        return lambda row: row.get("agent_id") in agents
    orchestrators = await bound_orchestrators(request)
    return lambda row: row.get("id") in orchestrators


async def _get(request: Request, table: str) -> JSON:
    row = await runtime(request).store.get_entity(table, _ident(request))
    if row is None or not (await _visibility(request, table))(row):
        raise NotFound(f"no {table[:-1].replace('_', ' ')} with id {request.path_params['id']}")
    return JSON(row)


async def _list(request: Request, table: str) -> JSON:
    where: dict[str, Any] = {}
    for name in LIST_FILTERS[table]:
        value = request.query_params.get(name)
        if value is None:
            continue
        if name == "archived":
            where[name] = 1 if value.lower() in ("1", "true", "yes") else 0
        elif name.endswith("_id") and name not in ("session_id", "adw_id"):
            try:
                where[name] = canonical_uuid(value)
            except ValueError:
                raise BadParameter(name, f"{value!r} is not a UUID") from None
        else:
            where[name] = value
    limit = parse_int("limit", request.query_params.get("limit"), minimum=1, maximum=1000) or 100
    offset = parse_int("offset", request.query_params.get("offset")) or 0
    rows = await runtime(request).store.list_entities(table, where, limit=limit, offset=offset)
    visible = await _visibility(request, table)
    rows = [row for row in rows if visible(row)]
    return JSON({"items": rows, "count": len(rows)})


def _guard(request: Request, table: str, ident: str | None = None) -> None:
    """Agent-bound tokens may only change their own agents, and create nothing."""
    principal = principal_of(request)
    if not principal.bound or principal.has("admin"):
        return
    if table != "agents" or ident is None or ident not in principal.agent_ids:
        raise Forbidden("this token is bound to agents and may only update those agents")


async def _patch(request: Request, table: str) -> JSON:
    rt = runtime(request)
    _guard(request, table, _ident(request))
    patch = validate_one(EntityPatch, await _one_object(request), rt.limits)
    _old, new = await rt.writer.submit(UpdateEntity(table, _ident(request), patch))
    return JSON(new)


async def create_orchestrator(request: Request) -> JSON:
    rt = runtime(request)
    _guard(request, "orchestrator_agents")
    spec = validate_one(OrchestratorAgentCreate, await _one_object(request), rt.limits)
    return JSON(await rt.writer.submit(CreateOrchestrator(spec)), status_code=201)


async def list_orchestrators(request: Request) -> JSON:
    return await _list(request, "orchestrator_agents")


async def get_orchestrator(request: Request) -> JSON:
    return await _get(request, "orchestrator_agents")


async def patch_orchestrator(request: Request) -> JSON:
    return await _patch(request, "orchestrator_agents")


async def create_agent(request: Request) -> JSON:
    rt = runtime(request)
    _guard(request, "agents")
    spec = validate_one(AgentCreate, await _one_object(request), rt.limits)
    return JSON(await rt.writer.submit(CreateAgent(spec)), status_code=201)


async def list_agents(request: Request) -> JSON:
    return await _list(request, "agents")


async def get_agent(request: Request) -> JSON:
    return await _get(request, "agents")


async def patch_agent(request: Request) -> JSON:
    return await _patch(request, "agents")


async def delete_agent(request: Request) -> JSON:
    rt = runtime(request)
    _guard(request, "agents", _ident(request))
    rt.quotas.charge(principal_of(request), 1)
    _old, new = await rt.writer.submit(ArchiveAgent(_ident(request)))
    return JSON(new)


async def create_prompt(request: Request) -> JSON:
    rt = runtime(request)
    _guard(request, "prompts")
    spec = validate_one(PromptCreate, await _one_object(request), rt.limits)
    return JSON(await rt.writer.submit(CreatePrompt(spec)), status_code=201)


async def list_prompts(request: Request) -> JSON:
    return await _list(request, "prompts")


async def get_prompt(request: Request) -> JSON:
    return await _get(request, "prompts")
