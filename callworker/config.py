"""Settings: one typed object, built once at start from CALLWORKER_* variables."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from typing import Annotated

from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "mask_url"]


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
    socket_host: str = "0.0.0.0"
    http_host: str = "0.0.0.0"

    # Commands
    command_max_age_s: float = 60.0
    command_workers: int = 64
    prefetch: int = 200
    # Originate: the dial string is sofia/gateway/<gateway>/<number>.
    gateways: Annotated[tuple[str, ...], NoDecode] = ("default",)
    default_gateway: str = "default"

    # FreeSWITCH connection
    esl_send_timeout_s: float = 5.0
    esl_connect_timeout_s: float = 5.0
    esl_event_format: str = "plain"
    esl_event_queue_size: int = 20000

    # Writer and relay
    write_batch_max: int = 500
    publish_window: int = 1000

    @field_validator("gateways", mode="before")
    @classmethod
    def _split_gateways(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("esl_event_format")
    @classmethod
    def _check_format(cls, value: str) -> str:
        if value not in ("plain", "json"):
            raise ValueError("esl_event_format must be plain or json")
        return value

    @property
    def amqp_url_value(self) -> str:
        return self.amqp_url.get_secret_value()

    @property
    def database_url_value(self) -> str:
        return self.database_url.get_secret_value()
