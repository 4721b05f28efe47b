"""Settings, read once: CLI flags override ``ORCHLOG_*`` environment variables override defaults.

Every field maps to ``ORCHLOG_<FIELD>`` (upper-case), e.g. ``ORCHLOG_DB``, ``ORCHLOG_PORT``,
``ORCHLOG_SYNCHRONOUS``. The object is frozen and handed down explicitly; nothing reads the
environment after start-up.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import OrchlogError

ENV_PREFIX = "ORCHLOG_"


class Limits(BaseModel):
    """Size limits on every input; the ingest models read them through validation context."""

    model_config = ConfigDict(frozen=True)

    max_body_bytes: int = 16 * 1024 * 1024
    max_items: int = 10_000
    max_content_chars: int = 1_000_000
    max_payload_bytes: int = 1024 * 1024
    max_field_chars: int = 4096


class Settings(Limits):
    db: str = "./orchlog.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"  # json: one JSON object per line

    # SQLite durability: NORMAL survives a process crash (kill -9); FULL also survives power loss.
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    busy_timeout_ms: int = Field(default=5000, ge=0)
    max_db_pages: int = Field(default=0, ge=0)  # SQLite max_page_count cap (0 = none): a disk quota
    read_connections: int = Field(default=4, ge=1, le=64)

    # writer: bounded queue of requests, group commit of up to max_batch_events per transaction
    queue_max_requests: int = Field(default=2000, ge=1)
    max_batch_events: int = Field(default=5000, ge=1)
    retry_after_s: float = 1.0

    # stream: hub wake-ups, per-subscriber bounds, liveness
    poll_interval_ms: float = Field(default=5.0, gt=0)
    hub_page: int = Field(default=1000, ge=1)
    subscriber_queue_events: int = Field(default=2000, ge=1)
    subscriber_queue_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    replay_page: int = Field(default=500, ge=1)
    heartbeat_s: float = Field(default=15.0, gt=0)
    send_timeout_s: float = Field(default=30.0, gt=0)
    max_subscribers: int = Field(default=10_000, ge=1)
    max_streams_per_token: int = Field(default=2_000, ge=1)
    max_streams_per_client: int = Field(default=1_000, ge=1)

    # retention ("" / 0 = keep forever): an age like 30d or 12h, and/or a row count, per table
    retention_age: str = ""
    retention_rows: int = Field(default=0, ge=0)
    retention_agent_logs_age: str | None = None
    retention_agent_logs_rows: int | None = Field(default=None, ge=0)
    retention_system_logs_age: str | None = None
    retention_system_logs_rows: int | None = Field(default=None, ge=0)
    maintenance_interval_s: float = Field(default=30.0, gt=0)  # retention + WAL checkpoint cadence
    fulltext_interval_s: float = Field(default=1.0, gt=0)  # full-text indexing cadence (searches catch up first)

    # integrations
    hook_max_field_chars: int = Field(default=8192, ge=100)  # longer hook strings are truncated (marked)

    # security
    tokens: str = Field(default="", repr=False)  # seeded tokens: "name:scope+scope:token,..."
    allowed_origins: str = ""  # extra browser origins for streams and CORS (comma list; "*" = any)
    insecure_no_auth: bool = False  # allow a non-loopback bind without any token
    ingest_rate: float = Field(default=0.0, ge=0)  # events/s per token (0 = unlimited)
    ingest_burst: float = Field(default=0.0, ge=0)  # most events one request may carry (0 = the rate)
    ticket_ttl_s: float = Field(default=30.0, gt=0)

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"tokens"})

    def public(self) -> dict[str, Any]:
        """The effective settings with secrets hidden (for logs and ``orchlog config``)."""
        return {k: ("***" if k in self.SECRET_FIELDS and v else v) for k, v in self.model_dump().items()}

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        config_file: str | None = None,
    ) -> Settings:
        """Flags (``overrides``, ``None`` = not given) > ``ORCHLOG_*`` env > TOML file > defaults.

        The file comes from ``config_file`` or ``ORCHLOG_CONFIG``; its keys are the field names
        (``db = "/var/lib/orchlog/orchlog.db"``, ``port = 8000``, ...), optionally under ``[orchlog]``.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        path = config_file or env.get(ENV_PREFIX + "CONFIG")
        if path:
            values.update(_read_toml(path, cls))
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = value
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise OrchlogError(
                f"bad setting {field} (flag --{field.replace('_', '-')} or {ENV_PREFIX}{field.upper()}): {first['msg']}"
            ) from exc

    @property
    def limits(self) -> Limits:
        return Limits.model_validate(self.model_dump(include=set(Limits.model_fields)))


def _read_toml(path: str, model: type[BaseModel]) -> dict[str, Any]:
    try:
        with open(os.path.expanduser(path), "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise OrchlogError(f"cannot read the config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise OrchlogError(f"config file {path} is not valid TOML: {exc}") from None
    section = data.get("orchlog", data)
    unknown = sorted(set(section) - set(model.model_fields))
    if unknown:
        raise OrchlogError(f"config file {path}: unknown setting {unknown[0]!r}")
    return dict(section)
