"""The rules for orchestrators, agents and prompts: ids and defaults on create, existence checks
(a clear 422 naming the field), ``add_*`` arithmetic with exact money and 64-bit bounds, and the
get-or-create used by the Claude Code hook.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from ..errors import NotFound, ValidationFailed
from ..ids import new_id
from ..models import MAX_INT, EntityPatch, now_ts
from .base import EnsureAgent
from .txn import Txn, money


def entity_values(spec: Any) -> dict[str, Any]:
    values: dict[str, Any] = spec.model_dump()
    values["id"] = values.get("id") or new_id()
    if "metadata" in values:
        values["metadata"] = orjson.dumps(values["metadata"]).decode()
    if "total_cost" in values:
        values["total_cost"] = money(values["total_cost"])
    return values


async def must_exist(tx: Txn, table: str, ident: str, field: str) -> None:
    if await tx.row(table, ident) is None:
        what = "orchestrator agent" if table == "orchestrator_agents" else "agent"
        raise ValidationFailed(
            f"{field} {ident} is not a known {what}", details=[{"field": field, "message": f"unknown {what}"}]
        )


def integrity(what: str, text: str) -> ValidationFailed:
    """A uniqueness or foreign-key refusal, naming the field it is about."""
    field = "id"
    if "session_id" in text:
        field = "session_id"
    elif "name" in text:
        field = "name"
    elif "FOREIGN KEY" in text or "foreign key" in text:
        field = "foreign_key"
    return ValidationFailed(
        f"the {what} conflicts with an existing row ({text})",
        details=[{"field": field, "message": text, "type": "integrity"}],
    )


async def create(tx: Txn, table: str, values: dict[str, Any], what: str) -> dict[str, Any]:
    if table != "prompts":
        values["created_at"] = values["updated_at"] = now_ts()
    try:
        await tx.insert(table, values)
    except tx.integrity_errors as exc:
        raise integrity(what, str(exc)) from exc
    row = await tx.row(table, values["id"])
    assert row is not None
    return tx.public(row)


async def update_entity(tx: Txn, table: str, ident: str, patch: EntityPatch) -> tuple[dict[str, Any], dict[str, Any]]:
    """Set fields and apply increments with exact arithmetic; the result is (old, new)."""
    old = await tx.row(table, ident, for_update=True)
    if old is None:
        raise NotFound(f"no {table[:-1].replace('_', ' ')} with id {ident}")
    changes: dict[str, Any] = {}
    for name, value in patch.model_dump(exclude_unset=True).items():
        if name.startswith("add_"):
            continue
        if name not in old:
            raise ValidationFailed(
                f"{name} cannot be set on {table}", details=[{"field": name, "message": "not a column here"}]
            )
        if name == "metadata":
            value = orjson.dumps(value).decode()
        elif name == "total_cost":
            value = money(value)
        changes[name] = value
    for name, add in (("input_tokens", patch.add_input_tokens), ("output_tokens", patch.add_output_tokens)):
        if add:
            changes[name] = int(changes.get(name, old[name])) + add
            if changes[name] > MAX_INT:  # the column is a 64-bit integer on both stores
                raise ValidationFailed(
                    f"add_{name} would take {name} past {MAX_INT}",
                    details=[{"field": f"add_{name}", "message": f"the sum must stay <= {MAX_INT}"}],
                )
    if patch.add_cost:
        base = Decimal(str(changes.get("total_cost", old["total_cost"])))
        changes["total_cost"] = money(base + patch.add_cost)
    changes["updated_at"] = now_ts()
    try:
        await tx.update(table, ident, changes)
    except tx.integrity_errors as exc:
        raise integrity(table[:-1].replace("_", " "), str(exc)) from exc
    new = await tx.row(table, ident)
    assert new is not None
    return tx.public(old), tx.public(new)


async def ensure_agent(tx: Txn, op: EnsureAgent) -> dict[str, Any]:
    """Get-or-create an agent and its orchestrator by known ids."""
    now = now_ts()
    meta = orjson.dumps(op.metadata or {}).decode()
    orchestrator = {"id": op.orchestrator_id, "status": "idle", "metadata": meta, "created_at": now, "updated_at": now}
    await tx.insert("orchestrator_agents", orchestrator, ignore_existing=True)
    existing = await tx.row("agents", op.agent_id)
    if existing is not None:
        return {**tx.public(existing), "created": False}
    values = {
        "id": op.agent_id,
        "orchestrator_agent_id": op.orchestrator_id,
        "name": op.name,
        "model": op.model,
        "status": "executing",
        "metadata": meta,
        "created_at": now,
        "updated_at": now,
    }
    try:
        await tx.insert("agents", values)
    except tx.integrity_errors as exc:
        raise integrity("agent", str(exc)) from exc
    row = await tx.row("agents", op.agent_id)
    assert row is not None
    return {**tx.public(row), "created": True}
