"""Settings, read once, on pydantic-settings: flags > ``ORCHLOG_*`` env > TOML file > defaults.

Every field maps to ``ORCHLOG_<FIELD>`` (upper-case), e.g. ``ORCHLOG_DB``, ``ORCHLOG_PORT``;
fields marked ``flag`` are also options of ``orchlog serve``. ``Settings.load`` validates every
value at start-up and reports ALL bad ones at once, each with its flag, variable and file key; an
``ORCHLOG_*`` variable that is no setting is warned about. ``Settings(...)`` built directly (tests,
benchmarks) reads nothing but its arguments. The object is frozen and handed down explicitly;
nothing reads the environment after start-up. The README's settings table is generated from the
field descriptions here (``orchlog config --markdown``), so docs and code cannot drift.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import OrchlogError

ENV_PREFIX = "ORCHLOG_"
# ORCHLOG_* variables that are read elsewhere (clients, the hook, compose): not settings, not typos;
# ORCHLOG_TEST_* belong to the test suite
OTHER_VARIABLES = frozenset(
    {"CONFIG", "URL", "TOKEN", "AGENT", "SPOOL", "ADMIN_TOKEN", "PG_PASSWORD", "SCALE_PORT", "BENCH_PG_URL"}
)
_DURATION = re.compile(r"^\d+(\.\d+)?\s*[smhdw]$")
log = logging.getLogger("orchlog.config")


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: C:\\ is a Windows path
DB_SCHEMES = ("sqlite://", "postgresql://", "postgres://")


def check_db_url(url: str) -> str:
    """The ``--db`` rule, in one place: a path, ``sqlite:///path`` or ``postgresql://...``; any
    other ``scheme:`` is refused, never taken for a file name (it used to become a directory)."""
    if not url.startswith(DB_SCHEMES) and _SCHEME.match(url):
        raise OrchlogError(
            f"--db {url!r} is neither a path nor a supported URL "
            "(use a file path, sqlite:///path or postgresql://user@host/db)"
        )
    return url


def _f(default: Any, doc: str, *, flag: bool = False, **kw: Any) -> Any:
    """A field with its one-line documentation (README table, ``--help``) and whether
    ``orchlog serve`` has a flag for it."""
    return Field(default, description=doc, json_schema_extra={"flag": flag}, **kw)


class Limits(BaseModel):
    """Size limits on every input. The ingest models are held to them by ``model_fields.bounded``
    (a subclass per ``Limits`` whose string bounds pydantic-core checks itself); JSON objects are
    measured by the models' own check."""

    model_config = ConfigDict(frozen=True)

    max_body_bytes: int = _f(16 * 1024 * 1024, "request body limit in bytes (413 while reading)", ge=1024)
    max_items: int = _f(10_000, "events per request", ge=1)
    max_content_chars: int = _f(1_000_000, "length of `content`, `message`, `summary`", ge=1)
    max_payload_bytes: int = _f(1024 * 1024, "size of `payload` / `metadata` JSON", ge=2)
    max_field_chars: int = _f(4096, "length of other string fields", ge=1)


class Settings(Limits, BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True, env_prefix=ENV_PREFIX, case_sensitive=False, env_ignore_empty=True, extra="forbid"
    )

    db: str = _f("./orchlog.db", "database: a SQLite path, `sqlite:///path` or `postgresql://...`", flag=True)
    host: str = _f("127.0.0.1", "interface to bind (another than loopback needs a token)", flag=True)
    port: int = _f(8000, "TCP port (0 picks a free one)", flag=True, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = _f("info", "server log level", flag=True)
    log_format: Literal["text", "json"] = _f("text", "server log lines: text, or one JSON object per line")
    access_log: bool = _f(False, "log every request (default: only errors and slow requests)", flag=True)
    slow_request_s: float = _f(1.0, "a request slower than this is logged even without --access-log", ge=0)

    synchronous: Literal["NORMAL", "FULL"] = _f(
        "NORMAL", "SQLite durability: NORMAL survives a crash of the process, FULL also power loss", flag=True
    )
    busy_timeout_ms: int = _f(5000, "SQLite busy timeout", ge=0)
    max_db_pages: int = _f(0, "disk quota as SQLite `max_page_count` (0 = none); full → 503", ge=0)
    read_connections: int = _f(4, "reader connections", ge=1, le=64)

    limit_concurrency: int = _f(0, "connections + running requests (0 = max_subscribers + 1000); over it → 503", ge=0)
    keep_alive_s: int = _f(5, "idle keep-alive connections close after this many seconds", ge=1)
    header_timeout_s: float = _f(10.0, "a request's headers must arrive within this (408, then close)", gt=0)

    queue_max_requests: int = _f(2000, "writer queue, in requests; full → 503 with `Retry-After`", ge=1)
    max_batch_events: int = _f(5000, "events per group commit", ge=1)
    retry_after_s: float = _f(1.0, "`Retry-After` sent when the writer queue is full", gt=0)

    poll_interval_ms: float = _f(5.0, "how often the hub checks for commits by other processes", gt=0)
    hub_page: int = _f(1000, "rows the hub reads per wake-up", ge=1)
    subscriber_queue_events: int = _f(2000, "per-subscriber queue (events) before catch-up mode", ge=1)
    subscriber_queue_bytes: int = _f(8 * 1024 * 1024, "per-subscriber queue (bytes) before catch-up mode", ge=1024)
    replay_page: int = _f(500, "rows per replay page", ge=1)
    heartbeat_s: float = _f(15.0, "idle heartbeat frames, seconds", gt=0)
    ws_impl: Literal["websockets", "websockets-sansio", "wsproto"] = _f(
        "websockets-sansio",
        "uvicorn's WebSocket implementation: websockets-sansio (default), websockets (legacy, deprecated by"
        " uvicorn) or wsproto (needs the wsproto package; frames go through the ASGI send one by one)",
    )
    shutdown_flush_s: float = _f(3.0, "on shutdown, streams keep sending what is committed this long, then 1001", gt=0)
    send_timeout_s: float = _f(30.0, "a WebSocket client that reads nothing this long is closed (1001)", gt=0)
    max_subscribers: int = _f(10_000, "live streams in all", ge=1)
    max_streams_per_token: int = _f(2_000, "live streams per token", ge=1)
    max_streams_per_client: int = _f(1_000, "live streams per client address", ge=1)

    retention_age: str = _f("", "delete events older than this (`30d`, `12h`; empty = keep)")
    retention_rows: int = _f(0, "keep only the newest N rows per table (0 = all)", ge=0)
    retention_agent_logs_age: str | None = _f(None, "`retention_age` for agent_logs only")
    retention_agent_logs_rows: int | None = _f(None, "`retention_rows` for agent_logs only", ge=0)
    retention_system_logs_age: str | None = _f(None, "`retention_age` for system_logs only")
    retention_system_logs_rows: int | None = _f(None, "`retention_rows` for system_logs only", ge=0)
    maintenance_interval_s: float = _f(30.0, "retention + WAL checkpoint cadence, seconds", gt=0)
    fulltext_interval_s: float = _f(1.0, "full-text indexing cadence, seconds (searches catch up first)", gt=0)

    hook_max_field_chars: int = _f(8192, "longer Claude Code hook strings are truncated (marked)", ge=100)

    tokens: SecretStr = _f(SecretStr(""), "seeded tokens `name:scope+scope:token,...` (secret)")
    allowed_origins: str = _f("", "extra browser origins for streams and CORS, comma list (`*` = any)")
    insecure_no_auth: bool = _f(False, "allow a non-loopback bind without any token", flag=True)
    ingest_rate: float = _f(0.0, "per-token ingest quota, events/s (0 = off)", ge=0)
    ingest_burst: float = _f(0.0, "most events one request may carry against the quota (0 = the rate)", ge=0)
    ticket_ttl_s: float = _f(30.0, "lifetime of a browser stream ticket, seconds", gt=0)

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"tokens"})

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("synchronous", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("retention_age", "retention_agent_logs_age", "retention_system_logs_age")
    @classmethod
    def _age(cls, value: str | None) -> str | None:
        if value and not _DURATION.match(value.strip().lower()):
            raise ValueError(f"{value!r} is not an age like 90s, 10m, 12h, 30d or 2w")
        return value

    @field_validator("db")
    @classmethod
    def _db(cls, value: str) -> str:
        try:
            return check_db_url(value)
        except OrchlogError as exc:
            raise ValueError(exc.message) from None

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, value: SecretStr) -> SecretStr:
        from .auth import parse_seeded

        try:
            parse_seeded(value.get_secret_value())
        except OrchlogError as exc:
            raise ValueError(exc.message) from None
        return value

    def public(self) -> dict[str, Any]:
        """The effective settings with secrets hidden (for logs and ``orchlog config``)."""
        out = self.model_dump()
        for name in self.SECRET_FIELDS:
            out[name] = "***" if out[name].get_secret_value() else ""
        return out

    @property
    def limits(self) -> Limits:
        return Limits.model_validate(self.model_dump(include=set(Limits.model_fields)))

    # ---------------------------------------------------------------- loading

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        loading = _LOADING.get()
        if loading is None:
            return (init_settings,)  # Settings(...) in code: its arguments and the defaults only
        environ, file_values = loading
        env = EnvSettingsSource(settings_cls, case_sensitive=False, env_prefix=ENV_PREFIX, env_ignore_empty=True)
        env.env_vars = {k.lower(): v for k, v in environ.items()}
        return (init_settings, env, InitSettingsSource(settings_cls, file_values))

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
        Raises ``OrchlogError`` listing every bad value."""
        env = dict(os.environ if environ is None else environ)
        path = config_file or env.get(ENV_PREFIX + "CONFIG")
        file_values = _read_toml(path) if path else {}
        flags = {k: v for k, v in (overrides or {}).items() if v is not None}
        unknown = unknown_variables(env)
        if unknown:
            log.warning(
                "orchlog: ignoring %s: not an orchlog setting (a typo? `orchlog config --markdown` lists them)",
                ", ".join(unknown),
            )
        try:
            with _loading(env, file_values):
                return cls(**flags)
        except ValidationError as exc:
            raise OrchlogError(describe_errors(exc, file=path)) from None


_LOADING: contextvars.ContextVar[tuple[dict[str, str], dict[str, Any]] | None] = contextvars.ContextVar(
    "orchlog_settings_loading", default=None
)


@contextmanager
def _loading(env: dict[str, str], file_values: dict[str, Any]) -> Iterator[None]:
    token = _LOADING.set((env, file_values))
    try:
        yield
    finally:
        _LOADING.reset(token)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    names = {n.upper() for n in Settings.model_fields} | OTHER_VARIABLES

    def unknown(key: str) -> bool:
        name = key.upper()
        return (
            name.startswith(ENV_PREFIX)
            and not name.startswith(ENV_PREFIX + "TEST_")
            and name[len(ENV_PREFIX) :] not in names
        )

    return sorted(filter(unknown, environ))


def where(name: str, file: str | None = None) -> str:
    """How a setting is given: its flag (if ``orchlog serve`` has one), variable and file key."""
    info = Settings.model_fields[name]
    places = []
    if _has_flag(info):
        places.append(f"flag --{name.replace('_', '-')}")
    places.append(f"env {ENV_PREFIX}{name.upper()}")
    places.append(f"key {name} in {file}" if file else f"config-file key {name}")
    return ", ".join(places)


def describe_errors(exc: ValidationError, *, file: str | None = None) -> str:
    lines = [f"{exc.error_count()} bad setting{'s' if exc.error_count() > 1 else ''}:"]
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        if name not in Settings.model_fields:
            lines.append(f"  - {name}: not a setting (see `orchlog config`)")
            continue
        value = error.get("input")
        shown = "***" if name in Settings.SECRET_FIELDS else repr(value)
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"  - {name} = {shown} ({where(name, file)}): {message}")
    return "\n".join(lines)


def _has_flag(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("flag"))


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(os.path.expanduser(path), "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise OrchlogError(f"cannot read the config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise OrchlogError(f"config file {path} is not valid TOML: {exc}") from None
    section = data.get("orchlog", data)
    unknown = sorted(set(section) - set(Settings.model_fields))
    if unknown:
        raise OrchlogError(f"config file {path}: unknown setting {unknown[0]!r}")
    return dict(section)


# ---------------------------------------------------------------- rendering (orchlog config, README)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def to_toml(settings: Settings) -> str:
    """The effective settings as a TOML file that ``--config`` accepts back. Unset optional values
    and secrets are written as comments (a secret is never printed)."""
    lines = ["# orchlog settings (flags > ORCHLOG_* env > this file > defaults)", "[orchlog]"]
    for name, value in settings.model_dump().items():
        if name in Settings.SECRET_FIELDS:
            state = "set, hidden" if value.get_secret_value() else "unset"
            lines.append(f"# {name} = ...  ({state}; give it with {ENV_PREFIX}{name.upper()})")
        elif value is None:
            lines.append(f"# {name} =   (unset)")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _default_text(info: FieldInfo) -> str:
    value = info.default
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None or value == "":
        return "(none)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, int) and value >= 1024 * 1024 and value % (1024 * 1024) == 0:
        return f"{value // (1024 * 1024)} MiB"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def settings_table() -> str:
    """The README's settings table, generated from the model."""
    rows = ["| variable | flag of `orchlog serve` | default | meaning |", "|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        flag = f"`--{name.replace('_', '-')}`" if _has_flag(info) else ""
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {flag} | {_default_text(info)} | {info.description} |")
    return "\n".join(rows) + "\n"
