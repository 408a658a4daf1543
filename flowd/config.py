"""Settings: every one has a section, a key, a type, a default and a help line, declared once here.

Precedence, lowest first: defaults, `flowd.toml` (or `--config PATH`), environment variables
`FLOWD_<SECTION>_<KEY>`, command-line flags. An ill-typed value, or an unknown setting in the
file, raises `ConfigError` naming the setting, so the server stops with one clear line instead of
running half-configured. An unknown `FLOWD_*` environment variable only becomes a warning (with
the closest setting's name): deployment tools and test harnesses put their own variables there.
`flowd.toml` and the README's settings table are checked against these dataclasses by a test.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from flowd.durations import parse_duration
from flowd.errors import ConfigError
from flowd.send_policy import (
    CONTACT_ZONE,
    check_clock_time,
    check_policy_zone,
    parse_config_cap,
)
from flowd.sizes import parse_size

# Environment variables that start with FLOWD_ but are not settings.
NON_SETTING_ENV = {"FLOWD_ADMIN_KEY", "FLOWD_CONFIG"}


def setting(default: Any, help: str, *, choices: tuple[str, ...] = (), min: float | None = None,
            max: float | None = None, key: str | None = None,
            check: Callable[[Any], Any] | None = None) -> Any:
    """`key`: the setting's name in flowd.toml and the environment, when it is not the field's
    (`from` is a Python keyword). `check(value)` validates a text setting with a grammar of its
    own (a duration, a size) and returns it as stored; its ValueError's message says why not."""
    return field(default=default, metadata={"help": help, "choices": choices, "min": min,
                                            "max": max, "key": key, "check": check})


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A check for a setting where "" means "none": a size may also be given as a number."""
    def check(value: Any) -> Any:
        if value == "":
            return value
        parse(value)
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    return check


def _positive_duration(value: Any) -> Any:
    """A check for an ISO 8601 duration setting that must be longer than zero."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 duration such as PT12H")
    if parse_duration(value) <= 0:
        raise ValueError("must be longer than zero")
    return value


def _key(f: Any) -> str:
    return f.metadata["key"] or f.name


@dataclass(frozen=True)
class ServerConfig:
    host: str = setting("127.0.0.1", "Address the HTTP server listens on.")
    port: int = setting(8080, "TCP port the HTTP server listens on (0 picks a free one).", min=0, max=65535)
    log_level: str = setting("info", "Logging threshold.", choices=("debug", "info", "warning", "error"))
    access_log: bool = setting(False, "Log one line per HTTP request.")
    shutdown_timeout: float = setting(
        10.0, "Seconds in-flight requests get to finish after SIGINT/SIGTERM.", min=0, max=3600)
    body_timeout: float = setting(
        30.0, "Seconds a request body may go without a byte arriving before the request is "
        "answered 408 and its connection closed (a slow but steady upload never times out).",
        min=0.1, max=3600)
    public_url: str = setting(
        "", "Base of the links flowd puts in messages (unsubscribe, tracking, approvals), e.g. "
        "https://flowd.example.com; empty: http://<host>:<port>.")
    metrics_token: str = setting(
        "", "When set, GET /metrics needs Authorization: Bearer <this token>; empty: it is "
        "public (bind the server to a private address).")
    session_ttl: str = setting(
        "PT12H", "How long a builder page sign-in (POST /v1/session) lasts (ISO 8601 duration); "
        "revoking its API key ends it at once.", check=_positive_duration)


@dataclass(frozen=True)
class StorageConfig:
    path: str = setting("flowd.db", "SQLite database file (created and migrated on first start).")
    synchronous: str = setting(
        "normal", "SQLite fsync policy: normal survives a process crash, full also a power loss.",
        choices=("normal", "full"))
    busy_timeout_ms: int = setting(5000, "How long a write waits for a lock held by another process.",
                                   min=0, max=600000)
    wal_max_bytes: int = setting(
        64 * 1024 * 1024, "The WAL is checkpointed and truncated once it grows past this size.",
        min=1024 * 1024)
    group_commit_max: int = setting(
        2000, "Most queued write units committed together in one transaction.", min=1, max=100000)
    read_connections: int = setting(2, "Connections (each with its own thread) serving reads.",
                                    min=1, max=32)
    read_timeout_ms: int = setting(
        10000, "A read that takes longer than this is stopped and answered 503 unavailable "
        "(writes are never stopped).", min=100, max=600000)


@dataclass(frozen=True)
class AuthConfig:
    key_cache_seconds: float = setting(
        2.0, "How long a verified API key is trusted without a database lookup; a key revoked "
        "with the CLI while the server runs stops working within this time.", min=0, max=3600)


@dataclass(frozen=True)
class EngineConfig:
    max_concurrent_runs: int = setting(
        1000, "Runs executing at once; more due runs wait their turn in the scheduler.",
        min=1, max=100000)
    max_steps_per_run: int = setting(
        10000, "A run that executes more steps than this fails with step_limit (runaway loops).",
        min=10, max=10_000_000)
    horizon_seconds: float = setting(
        60.0, "Runs due within this window are kept in memory; later ones only on disk.",
        min=1, max=3600)
    # Above the http steps' longest own timeout (300 s), so a call's timeout fires first and
    # the trace says which call timed out.
    step_timeout_seconds: float = setting(
        330.0, "Longest a step attempt may take; past it the attempt fails with step_timeout "
        "(retried like any failure), so a slow provider cannot hold a run slot for ever.",
        min=0.01, max=86400)


@dataclass(frozen=True)
class HttpConfig:
    allow_private_networks: bool = setting(
        False, "Let webhook and http_request steps call loopback, private and link-local "
        "addresses (internal services).")
    allowed_networks: str = setting(
        "", "Comma-separated CIDRs callable even when private networks are not, e.g. "
        "10.0.5.0/24.")
    max_response_bytes: int = setting(65536, "Most bytes of a response body kept as step output.",
                                      min=1024, max=16 * 1024 * 1024)


@dataclass(frozen=True)
class EmailConfig:
    provider: str = setting("outbox", "outbox records messages and sends nothing off the "
                            "machine; smtp delivers through the server below.",
                            choices=("outbox", "smtp"))
    host: str = setting("localhost", "SMTP server.")
    port: int = setting(25, "SMTP port (587 with starttls, 465 with tls).", min=1, max=65535)
    username: str = setting("", "SMTP login (none when empty).")
    password: str = setting("", "SMTP password.")
    starttls: bool = setting(False, "Upgrade the SMTP connection with STARTTLS.")
    tls: bool = setting(False, "Connect with TLS from the start (SMTPS).")
    ca_file: str = setting("", "PEM file of the CAs that may sign the SMTP server's "
                           "certificate (empty: the system's).")
    sender: str = setting("flowd <flowd@localhost>", "Default From of every email.", key="from")
    reply_to: str = setting("", "Default Reply-To (none when empty).")
    track_opens: bool = setting(True, "Put a 1x1 open-tracking image in HTML emails.")
    track_clicks: bool = setting(True, "Rewrite http(s) links of HTML emails to count clicks.")
    timeout_seconds: float = setting(30.0, "Timeout of every SMTP command.", min=0.1, max=600)
    connections: int = setting(4, "SMTP connections kept open and reused.", min=1, max=64)


@dataclass(frozen=True)
class SmsConfig:
    provider: str = setting("outbox", "outbox records SMS and sends nothing off the machine; "
                            "twilio sends through Twilio's Messages API.",
                            choices=("outbox", "twilio"))
    account_sid: str = setting("", "Twilio account SID (AC…).")
    auth_token: str = setting("", "Twilio auth token.")
    sender: str = setting("", "The number (E.164) or sender ID SMS are sent from; or set "
                          "messaging_service_sid.", key="from")
    messaging_service_sid: str = setting("", "A Twilio Messaging Service (MG…) that picks the "
                                         "sender; used instead of from when set.")
    base_url: str = setting("https://api.twilio.com", "Twilio's API base URL (the operator's: "
                            "not checked by the private-network guard).")
    timeout_seconds: float = setting(10.0, "Timeout of every call to the SMS provider.",
                                     min=0.1, max=600)


@dataclass(frozen=True)
class PushConfig:
    provider: str = setting("outbox", "outbox records push notifications and sends nothing off "
                            "the machine; fcm sends through Firebase Cloud Messaging (HTTP v1; "
                            "needs pip install 'flowd[fcm]').", choices=("outbox", "fcm"))
    service_account_file: str = setting("", "Firebase service-account JSON key file "
                                        "(client_email, private_key, project_id).")
    base_url: str = setting("https://fcm.googleapis.com", "FCM's API base URL (the operator's: "
                            "not checked by the private-network guard).")
    token_url: str = setting("", "OAuth2 token endpoint of the service account's JWT-bearer "
                             "grant (empty: the key file's token_uri, else "
                             "https://oauth2.googleapis.com/token).")
    timeout_seconds: float = setting(10.0, "Timeout of every call to the push provider (and "
                                     "its token endpoint).", min=0.1, max=600)


@dataclass(frozen=True)
class SlackConfig:
    webhook_url: str = setting("", "Incoming-webhook URL of slack steps without a webhook_url "
                               "of their own (the operator's: not checked by the "
                               "private-network guard).")
    timeout_seconds: float = setting(10.0, "Timeout of every Slack webhook call.",
                                     min=0.1, max=600)


@dataclass(frozen=True)
class AiConfig:
    provider: str = setting(
        "", "The language model of ai steps and composing workflows from a prompt: ollama "
        "(POST /api/chat) or openai (any OpenAI-compatible /v1/chat/completions); empty: none "
        "(ai steps take their unavailable path) unless a project brings its own "
        "(PUT /v1/settings/ai).", choices=("", "ollama", "openai"))
    base_url: str = setting(
        "", "The provider's base URL (the operator's: not checked by the private-network "
        "guard); empty: https://api.openai.com for openai, http://127.0.0.1:11434 for ollama.")
    api_key: str = setting(
        "", "Sent as Authorization: Bearer (openai; ollama only when set). Never shown by the "
        "API or written to the log.")
    model: str = setting(
        "", "The model asked when neither the project's settings nor the step name one, e.g. "
        "gpt-4o-mini or llama3.2.")
    timeout_seconds: float = setting(
        60.0, "Timeout of every call to the model (a step attempt may make two: the corrective "
        "retry), within [engine] step_timeout_seconds.", min=0.1, max=600)


@dataclass(frozen=True)
class AlertsConfig:
    failing_rate: float = setting(
        0.2, "workflow.failing is sent when at least this share of a workflow's runs that "
        "ended in the last hour failed.", min=0.0, max=1.0)
    failing_min_runs: int = setting(
        10, "…and at least this many of its runs ended in that hour.", min=1, max=1000)
    timeout_seconds: float = setting(
        10.0, "Timeout of one alert webhook delivery attempt.", min=0.1, max=300)


@dataclass(frozen=True)
class RetentionConfig:
    runs: str = setting(
        "P30D", "Ended runs (completed, failed, cancelled) are deleted with their trace this long "
        "after they ended (ISO 8601 duration; empty: kept for ever). Waiting, paused and running "
        "runs are never deleted.", check=_optional(parse_duration))
    events: str = setting(
        "P30D", "Events are deleted this long after they were received, except those an open "
        "wait_for_event may still match (empty: kept for ever).", check=_optional(parse_duration))
    messages: str = setting(
        "", "Sent, failed, bounced and suppressed messages are deleted this long after they were "
        "created (empty: kept for ever, the record of what each contact was sent).",
        check=_optional(parse_duration))
    max_db_size: str = setting(
        "", "When the database holds more than this (bytes, or e.g. \"2GB\"), the oldest ended "
        "runs, events and messages are deleted beyond their ages until it fits, and that is "
        "logged (empty: no cap).", check=_optional(parse_size))
    interval_seconds: float = setting(
        3600.0, "Seconds between two retention passes (the first runs a minute after start).",
        min=1, max=7 * 86400)


def _size_between(low: int, high: int) -> Callable[[Any], Any]:
    """A check for a size (`"32MB"`, or a number of bytes) from `low` to `high` bytes."""
    def check(value: Any) -> Any:
        size = parse_size(value)
        if not low <= size <= high:
            raise ValueError(f"must be from {low:,} to {high:,} bytes")
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    return check


def _duration_up_to(high_ms: int, shown: str) -> Callable[[Any], Any]:
    """A check for an ISO 8601 duration longer than zero and at most `high_ms`."""
    def check(value: Any) -> Any:
        _positive_duration(value)
        if parse_duration(value) > high_ms:
            raise ValueError(f"must be at most {shown}")
        return value
    return check


@dataclass(frozen=True)
class CodeConfig:
    workers: int = setting(
        2, "Worker processes that run code steps' JavaScript, one script each at a time; more "
        "code steps wait for a free worker.", min=1, max=64)
    memory_limit: str = setting(
        "32MB", "Most memory one code step's script may use (its data, the input it is given, "
        "the JSON it returns); past it the step fails with code_memory.",
        check=_size_between(1 << 20, 4 << 30))
    max_stack_size: str = setting(
        "256KiB", "Deepest JavaScript call stack a script may use; past it the script gets a "
        "RangeError (code_error).", check=_size_between(16 << 10, 4 << 20))
    max_timeout: str = setting(
        "PT10S", "Most CPU time a code step's timeout may ask for (ISO 8601 duration); a longer "
        "one is cut to it.", check=_duration_up_to(300_000, "PT5M"))


def _clock_time(value: Any) -> Any:
    """A check for a time of day HH:MM, or "" (none)."""
    if not isinstance(value, str):
        raise ValueError("must be a time of day HH:MM")
    problem = check_clock_time(value) if value else None
    if problem:
        raise ValueError(problem)
    return value


def _policy_zone(value: Any) -> Any:
    """A check for "contact" or an IANA time zone."""
    problem = check_policy_zone(value) if isinstance(value, str) else "must be a string"
    if problem:
        raise ValueError(problem)
    return value


def _time_zone(value: Any) -> Any:
    """A check for an IANA time zone."""
    if value == CONTACT_ZONE or not isinstance(value, str) or check_policy_zone(value):
        raise ValueError("must be an IANA time zone name such as Europe/Berlin")
    return value


def _frequency_cap(value: Any) -> Any:
    """A check for "<max>/<duration>", or "" (no cap)."""
    if not isinstance(value, str):
        raise ValueError('must be "<max>/<ISO 8601 duration>" such as "3/P1D"')
    if value:
        parse_config_cap(value)
    return value


_CAP_HELP = ("At most this many {what} per contact in a rolling window, counted across all "
             "its journeys: \"<max>/<ISO 8601 duration>\", e.g. \"3/P1D\" (empty: no cap). "
             "A workflow's settings.frequency_cap overrides it.")


@dataclass(frozen=True)
class PolicyConfig:
    timezone: str = setting(
        "UTC", "The project's IANA time zone: quiet hours of contacts without a timezone of "
        "their own are read on its clock.", check=_time_zone)
    quiet_hours_start: str = setting(
        "", "Quiet hours begin at this local time HH:MM (empty, with quiet_hours_end: none). "
        "Messages to contacts (email, sms, push) wait or are skipped until they end; "
        "transactional and approval emails never. A workflow's settings.quiet_hours "
        "overrides them.", check=_clock_time)
    quiet_hours_end: str = setting(
        "", "Quiet hours end at this local time HH:MM (before the start: they span midnight; "
        "equal to it: none).", check=_clock_time)
    quiet_hours_timezone: str = setting(
        "contact", "Whose clock quiet hours are read on: contact (the contact's timezone, else "
        "policy.timezone) or an IANA time zone name.", check=_policy_zone)
    quiet_hours_mode: str = setting(
        "defer", "defer: the run waits and the step runs again when quiet hours end; skip: the "
        "step sends nothing (outcome rate_limited) and the run goes on.",
        choices=("defer", "skip"))
    frequency_cap_email: str = setting("", _CAP_HELP.format(what="emails"),
                                       check=_frequency_cap)
    frequency_cap_sms: str = setting("", _CAP_HELP.format(what="SMS messages"),
                                     check=_frequency_cap)
    frequency_cap_push: str = setting("", _CAP_HELP.format(what="push notifications"),
                                      check=_frequency_cap)
    frequency_cap_slack: str = setting("", _CAP_HELP.format(what="Slack posts"),
                                       check=_frequency_cap)
    frequency_cap_mode: str = setting(
        "defer", "What a capped message does: defer (the run waits until the oldest counted "
        "message leaves the window, then the step runs again) or skip (outcome rate_limited).",
        choices=("defer", "skip"))


@dataclass(frozen=True)
class AudiencesConfig:
    max_python_rows: int = setting(
        100_000, "Most contacts one audience evaluation (a count, a page, a fire, a bulk job) "
        "may decide in Python, for the parts of a filter SQL cannot decide exactly (a value "
        "that is a template, eq_ignore_case on non-ASCII text, …); one that needs more is "
        "refused (422 audience_too_costly).", min=0, max=100_000_000)
    max_members: int = setting(
        100_000, "Most members a schedule fire or a bulk job takes from an audience; a bulk job "
        "over a bigger audience is refused (422), a fire over one starts no run and is logged.",
        min=1, max=10_000_000)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)
    push: PushConfig = field(default_factory=PushConfig)
    slack: SlackConfig = field(default_factory=SlackConfig)
    ai: AiConfig = field(default_factory=AiConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    code: CodeConfig = field(default_factory=CodeConfig)
    audiences: AudiencesConfig = field(default_factory=AudiencesConfig)
    source: str = "defaults"  # where the file part came from, for the start-up log line
    # Said once logging is set up (which needs this config): unknown environment variables.
    warnings: tuple[str, ...] = field(default=(), compare=False)


_SECTION_TYPES = {"server": ServerConfig, "storage": StorageConfig, "auth": AuthConfig,
                  "engine": EngineConfig, "http": HttpConfig, "email": EmailConfig,
                  "sms": SmsConfig, "push": PushConfig, "slack": SlackConfig,
                  "ai": AiConfig, "alerts": AlertsConfig, "retention": RetentionConfig,
                  "policy": PolicyConfig, "code": CodeConfig, "audiences": AudiencesConfig}


def describe_settings() -> list[tuple[str, str, Any, str]]:
    """(section, key, default, help) for every setting, in declaration order."""
    rows = []
    for section, cls in _SECTION_TYPES.items():
        for f in fields(cls):
            rows.append((section, _key(f), f.default, f.metadata["help"]))
    return rows


def _coerce(section: str, f: Any, value: Any, origin: str) -> Any:
    name = f"{section}.{_key(f)}"
    kind = type(f.default)
    if f.metadata["check"] is not None:
        try:
            value = f.metadata["check"](value)
        except ValueError as exc:
            raise ConfigError(f"setting {name} ({origin}) {exc}; got {value!r}") from None
    if isinstance(value, str) and kind is not str:
        value = _parse_text(value, kind, name, origin)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise _wrong_type(name, origin, kind, value)
    if kind is float and not math.isfinite(value):  # nan slips past every min/max comparison
        raise ConfigError(f"setting {name} ({origin}) must be a finite number; got {value!r}")
    meta = f.metadata
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"setting {name} ({origin}) must be one of {', '.join(meta['choices'])}; "
                          f"got {value!r}")
    if meta["min"] is not None and value < meta["min"]:
        raise ConfigError(f"setting {name} ({origin}) must be at least {meta['min']}; got {value!r}")
    if meta["max"] is not None and value > meta["max"]:
        raise ConfigError(f"setting {name} ({origin}) must be at most {meta['max']}; got {value!r}")
    return value


def _parse_text(text: str, kind: type, name: str, origin: str) -> Any:
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    else:
        try:
            return kind(text)
        except ValueError:
            pass
    raise _wrong_type(name, origin, kind, text)


# What a value of each setting type is called in an error message (not "a int", "a bool").
_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _wrong_type(name: str, origin: str, kind: type, value: Any) -> ConfigError:
    return ConfigError(f"setting {name} ({origin}) must be {_TYPE_WORDS[kind]}, got {value!r}")


def _apply(config: Config, section: str, key: str, value: Any, origin: str) -> Config:
    cls = _SECTION_TYPES.get(section)
    if cls is None:
        raise ConfigError(f"unknown setting section [{section}] ({origin}); "
                          f"known sections: {', '.join(_SECTION_TYPES)}")
    by_key = {_key(f): f for f in fields(cls)}
    if key not in by_key:
        raise ConfigError(f"unknown setting {section}.{key} ({origin}); "
                          f"known in [{section}]: {', '.join(by_key)}")
    f = by_key[key]
    coerced = _coerce(section, f, value, origin)
    return replace(config, **{section: replace(getattr(config, section), **{f.name: coerced})})


def _from_file(config: Config, path: Path) -> Config:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: top-level key {section!r} must be a [section] table")
        for key, value in table.items():
            config = _apply(config, section, key, value, str(path))
    return replace(config, source=str(path))


def _from_env(config: Config, environ: Mapping[str, str]) -> Config:
    warnings: list[str] = []
    for name, value in sorted(environ.items()):
        if not name.startswith("FLOWD_") or name in NON_SETTING_ENV:
            continue
        setting_key = _env_setting(name)
        if setting_key is None:
            warnings.append(_unknown_env_warning(name))
            continue
        section, key = setting_key
        config = _apply(config, section, key, value, f"environment {name}")
    return replace(config, warnings=config.warnings + tuple(warnings))


def _env_setting(name: str) -> tuple[str, str] | None:
    """(section, key) of the setting `FLOWD_<SECTION>_<KEY>` names, or None."""
    section, _, key = name[len("FLOWD_"):].lower().partition("_")
    cls = _SECTION_TYPES.get(section)
    if cls is None or key not in {_key(f) for f in fields(cls)}:
        return None
    return section, key


def _unknown_env_warning(name: str) -> str:
    closest = _closest_env_name(name)
    if closest is not None:
        return f"unknown environment variable {name} (ignored): did you mean {closest}?"
    return (f"unknown environment variable {name} (ignored): settings are named "
            "FLOWD_<SECTION>_<KEY>, e.g. FLOWD_SERVER_PORT (all are listed in flowd.toml)")


def _closest_env_name(name: str) -> str | None:
    # Compared without the shared FLOWD_ (which would make every name look alike), and also
    # by bare key, so that FLOWD_PORT finds FLOWD_SERVER_PORT.
    candidates = {variable[len("FLOWD_"):]: variable for variable in NON_SETTING_ENV}
    for section, key, _, _ in describe_settings():
        variable = f"FLOWD_{section}_{key}".upper()
        candidates[f"{section}_{key}".upper()] = variable
        candidates.setdefault(key.upper(), variable)   # a bare key means its first section
    matches = difflib.get_close_matches(name[len("FLOWD_"):].upper(), candidates, n=1, cutoff=0.6)
    return candidates[matches[0]] if matches else None


def load_config(path: str | None = None, overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Build the effective configuration.

    `path` None means `$FLOWD_CONFIG`, else `./flowd.toml` when it exists; a named file must exist.
    `overrides` maps "section.key" to values from command-line flags (None values are skipped).
    Unknown FLOWD_* variables end up in `warnings`, for the caller to log once logging is set up.
    """
    environ = os.environ if environ is None else environ
    config = Config()
    explicit = path or environ.get("FLOWD_CONFIG")
    if explicit:
        config = _from_file(config, Path(explicit))
    elif Path("flowd.toml").is_file():
        config = _from_file(config, Path("flowd.toml"))
    config = _from_env(config, environ)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            section, key = dotted.split(".", 1)
            config = _apply(config, section, key, value, "command line")
    return config
