"""Settings: one typed object, built once at start from CALLWORKER_* variables."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from callworker.errors import ConfigError
from callworker.esl.peers import parse_networks

__all__ = ["MIN_HMAC_KEY_LENGTH", "Settings", "mask_url"]

# Shorter keys can be guessed: the stored hashes of 4-digit codes would then give the codes.
MIN_HMAC_KEY_LENGTH = 16


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, for logs and /healthz."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


_CID_PREFIX_RE = re.compile(r"\A\+?[0-9]{1,14}\Z")
_MEDIA_DIR_RE = re.compile(r"\A/[A-Za-z0-9/._-]{0,200}\Z")


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'callworker.sqlite3'}"


class Settings(BaseSettings):
    """Everything the worker reads from its environment (CONTRACT section 6)."""

    model_config = SettingsConfigDict(env_prefix="CALLWORKER_", extra="ignore", frozen=True)

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/%2F")
    database_url: SecretStr = Field(default_factory=lambda: SecretStr(_default_database_url()))
    esl_host: str = "127.0.0.1"
    esl_port: int = 8021
    esl_password: SecretStr = SecretStr("ClueCon")
    node_id: str = Field(default_factory=socket.gethostname)
    http_port: int = 8080
    socket_port: int = 8084
    # Loopback unless told: whoever reaches this port can pose as FreeSWITCH.
    socket_host: str = "127.0.0.1"
    # Addresses and networks (CIDR) that may hand calls over; none: FreeSWITCH's address
    # (esl_host, resolved). Comma-separated in the environment.
    socket_allow: Annotated[tuple[str, ...], NoDecode] = ()
    # After a caller hangs up during the hand-over, how long to wait before asking
    # FreeSWITCH whether the channel still exists.
    inbound_settle_after_s: float = 10.0
    http_host: str = "0.0.0.0"

    # Commands
    command_max_age_s: float = 60.0
    command_workers: int = 64
    prefetch: int = 200
    # Originate: the dial string is sofia/gateway/<gateway>/<number>.
    gateways: Annotated[tuple[str, ...], NoDecode] = ("default",)
    default_gateway: str = "default"
    # Dialplan contexts a connect to an extension may name (the first is the default).
    contexts: Annotated[tuple[str, ...], NoDecode] = ("default",)
    # An answered call is ended with ALLOTTED_TIMEOUT after this long, unless its
    # originate says otherwise (max_duration_s).
    max_call_duration_s: int = Field(default=14400, ge=1, le=86400)

    # FreeSWITCH connection
    esl_send_timeout_s: float = 5.0
    esl_connect_timeout_s: float = 5.0
    esl_event_format: str = "plain"
    esl_event_queue_size: int = Field(default=20000, ge=1)
    # Events beyond the queue are held in an overflow up to this many MB (as FreeSWITCH
    # sent them); past it they are dropped and the calls reconciled once it has cleared.
    esl_event_overflow_mb: float = Field(default=256.0, ge=0)

    # Writer and relay
    write_batch_max: int = 500
    # A batch of FreeSWITCH events alone waits this long for more (a command ends the wait).
    write_linger_ms: float = Field(default=5.0, ge=0, le=1000)
    publish_window: int = 1000

    # Flash calls: the caller ID is a prefix from the pool followed by the code.
    flashcall_code_length: int = Field(default=4, ge=3, le=12)
    flashcall_cid_prefixes: Annotated[tuple[str, ...], NoDecode] = ("7487260",)
    # No default: codes are hashed with it, and a key anyone can read would make the
    # stored hashes as good as the codes. `flashcall_key()` refuses to go on without one.
    flashcall_hmac_key: SecretStr | None = None
    flashcall_ttl_s: float = Field(default=300.0, gt=0)
    flashcall_max_attempts: int = Field(default=3, ge=1)
    flashcall_ring_ms: int = Field(default=2000, ge=0)
    flashcall_ring_timeout_s: int = Field(default=15, ge=5, le=120)
    flashcall_resend_cooldown_s: float = Field(default=30.0, ge=0)
    flashcall_window_s: float = Field(default=3600.0, gt=0)
    # Orders per phone (and per tenant) inside the window; 0 means no cap.
    flashcall_max_per_phone_per_window: int = Field(default=5, ge=0)
    flashcall_max_per_tenant_per_window: int = Field(default=10000, ge=0)
    # Regular expressions a destination's digits (without '+') must match in full;
    # space-separated in the environment (a regex may hold commas).
    flashcall_allowed_destinations: Annotated[tuple[str, ...], NoDecode] = ("[0-9]{10,15}",)
    flashcall_gateway: str | None = None  # None: default_gateway

    # Policy (limits, permissions, rates): YAML or JSON; none means no limits.
    policy_file: Path | None = None
    # Calls, events, CDRs and flash-call orders older than this are deleted.
    retention_days: int = Field(default=365, ge=1)
    # Command records are kept this long (their ids stay taken for as long).
    command_retention_days: int = Field(default=7, ge=1)

    # Media (docs/media.md). Paths as FreeSWITCH sees them: `play` names a sound in
    # sounds_dir, recordings are written under recordings_dir. Both reach FreeSWITCH in
    # commands, so only absolute paths of [A-Za-z0-9/._-] without ".." are taken.
    sounds_dir: str = "/usr/share/freeswitch/sounds"
    recordings_dir: str = "/var/lib/freeswitch/recordings"

    @field_validator("policy_file", mode="before")
    @classmethod
    def _no_empty_path(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("gateways", "flashcall_cid_prefixes", mode="before")
    @classmethod
    def _split_gateways(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("contexts", mode="before")
    @classmethod
    def _split_contexts(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("contexts")
    @classmethod
    def _check_contexts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from callworker.contract.connect import CONTEXT_RE

        if not value:
            raise ValueError("CALLWORKER_CONTEXTS needs at least one dialplan context")
        for name in value:
            if CONTEXT_RE.match(name) is None:
                raise ValueError("CALLWORKER_CONTEXTS: a context name is 1 to 64 of [A-Za-z0-9_.-]")
        return value

    @field_validator("socket_allow", mode="before")
    @classmethod
    def _split_allow(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("socket_allow")
    @classmethod
    def _check_allow(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            parse_networks(value)
        except ValueError as exc:
            raise ValueError(f"CALLWORKER_SOCKET_ALLOW: {exc}") from None
        return value

    @field_validator("flashcall_allowed_destinations", mode="before")
    @classmethod
    def _split_patterns(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(value.split())
        return value

    @field_validator("flashcall_allowed_destinations")
    @classmethod
    def _check_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error:
                raise ValueError("flashcall_allowed_destinations holds an invalid regex") from None
        return value

    @field_validator("flashcall_cid_prefixes")
    @classmethod
    def _check_prefixes(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        # The whole caller ID (prefix + code) must still be a valid number: up to 15 digits.
        code_length = info.data.get("flashcall_code_length", 4)
        if not value:
            raise ValueError("flashcall_cid_prefixes needs at least one prefix")
        for prefix in value:
            if _CID_PREFIX_RE.match(prefix) is None:
                raise ValueError("a flash-call caller ID prefix is an optional '+' then digits")
            if len(prefix.lstrip("+")) + code_length > 15:
                raise ValueError("flash-call prefix plus code must be at most 15 digits")
        return value

    @field_validator("sounds_dir", "recordings_dir")
    @classmethod
    def _check_media_dir(cls, value: str, info: ValidationInfo) -> str:
        value = value.rstrip("/") or value
        if _MEDIA_DIR_RE.match(value) is None or ".." in value.split("/"):
            raise ValueError(f"{info.field_name} must be an absolute path of [A-Za-z0-9/._-], without '..'")
        return value

    @field_validator("esl_event_format")
    @classmethod
    def _check_format(cls, value: str) -> str:
        if value not in ("plain", "json"):
            raise ValueError("esl_event_format must be plain or json")
        return value

    def flashcall_key(self) -> bytes:
        """The flash-call HMAC key; ConfigError when it is unset or too short to be a secret."""
        key = self.flashcall_hmac_key.get_secret_value() if self.flashcall_hmac_key else ""
        if not key.strip():
            raise ConfigError(
                "CALLWORKER_FLASHCALL_HMAC_KEY is not set: flash-call codes are stored as HMACs "
                f"under this secret key (at least {MIN_HMAC_KEY_LENGTH} characters, e.g. from "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        if len(key) < MIN_HMAC_KEY_LENGTH:
            raise ConfigError(
                f"CALLWORKER_FLASHCALL_HMAC_KEY is too short: at least {MIN_HMAC_KEY_LENGTH} characters"
            )
        return key.encode("utf-8")

    @property
    def amqp_url_value(self) -> str:
        return self.amqp_url.get_secret_value()

    @property
    def database_url_value(self) -> str:
        return self.database_url.get_secret_value()
