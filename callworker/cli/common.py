"""What the operator commands share: exit statuses, connection settings, option types, output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from pydantic import ValidationError
from rich.console import Console, RenderableType

from callworker.config import Settings
from callworker.contract import TENANT_RE
from callworker.errors import ConfigError

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR_REPLY",
    "EXIT_INTERRUPTED",
    "EXIT_NO_REPLY",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "CliError",
    "load_settings",
    "add_amqp_option",
    "add_database_option",
    "add_tenant_option",
    "amqp_url",
    "console",
    "database_url",
    "print_json",
    "seconds_from_now",
    "show",
    "timestamp",
]

# Exit statuses (docs/cli.md lists them).
EXIT_OK = 0
EXIT_ERROR_REPLY = 1  # the worker answered ok: false
EXIT_USAGE = 2  # bad options or settings (argparse's own status for usage errors)
EXIT_NO_REPLY = 3  # no reply in time, or --wait ran out before the call ended
EXIT_UNAVAILABLE = 4  # RabbitMQ or the database could not be used
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
EXIT_BROKEN_PIPE = 141  # the reader went away (`| head`), as a shell reports SIGPIPE


# Console width into a pipe or file: wide enough that no table row is cut or wrapped.
_UNWRAPPED = 1000


class CliError(Exception):
    """A failure the command reports in one line and an exit status, without a traceback."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def load_settings() -> Settings:
    """The settings from the environment; ConfigError naming the first variable that is wrong."""
    try:
        return Settings()
    except ValidationError as exc:
        # The first problem is enough; pydantic would print the offending value.
        first = exc.errors()[0]
        where = "CALLWORKER_" + str(first["loc"][0]).upper() if first.get("loc") else "a CALLWORKER_ variable"
        raise ConfigError(f"{where}: {first['msg']}") from None


def amqp_url(args: argparse.Namespace) -> str:
    """--amqp-url, else CALLWORKER_AMQP_URL, else the contract's default."""
    return str(args.amqp_url) if args.amqp_url else load_settings().amqp_url_value


def database_url(args: argparse.Namespace) -> str:
    """--database-url, else CALLWORKER_DATABASE_URL, else the SQLite file of the working directory."""
    return str(args.database_url) if args.database_url else load_settings().database_url_value


def add_amqp_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--amqp-url", metavar="URL", default=None,
        help="RabbitMQ (default: CALLWORKER_AMQP_URL; the environment keeps the password out of ps)",
    )


def add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", metavar="URL", default=None,
        help="the database (default: CALLWORKER_DATABASE_URL; the environment keeps the password out of ps)",
    )


def _tenant(text: str) -> str:
    if TENANT_RE.match(text) is None:
        raise argparse.ArgumentTypeError("a tenant matches [a-z0-9][a-z0-9_-]{0,62}")
    return text


def add_tenant_option(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """--tenant, defaulting to CALLWORKER_TENANT (read when the parser is built)."""
    default = os.environ.get("CALLWORKER_TENANT") or None
    parser.add_argument(
        "--tenant", type=_tenant, default=default, required=required and default is None,
        help="the tenant (default: CALLWORKER_TENANT)",
    )


def timestamp(text: str) -> datetime:
    """An argparse type: ISO 8601 (a date is its midnight; no offset means UTC), or "now"."""
    if text == "now":
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected ISO 8601, e.g. 2026-11-01 or 2026-11-01T08:00:00+01:00") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def seconds_from_now(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def console(file: IO[str] | None = None) -> Console:
    """A rich console on ``file`` (default stdout, looked up now so tests can capture it).

    On a terminal it takes the terminal's width; into a pipe or file it does not
    wrap rows at 80 columns, so every line stays whole for grep and awk.
    """
    file = file if file is not None else sys.stdout
    if file.isatty():
        return Console(file=file)
    return Console(file=file, width=_UNWRAPPED, no_color=True)


def show(*renderables: RenderableType) -> None:
    """Print tables and text on stdout; into a pipe or file, without rich's trailing padding."""
    out = console()
    if out.is_terminal:
        out.print(*renderables)
        return
    with out.capture() as captured:
        out.print(*renderables)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    sys.stdout.flush()


def print_json(document: Any, file: IO[str] | None = None) -> None:
    """One JSON document on one line (JSON lines when called repeatedly)."""
    out = file if file is not None else sys.stdout
    out.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n")
    out.flush()
