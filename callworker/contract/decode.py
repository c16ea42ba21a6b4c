"""The one entry point from an AMQP delivery to a validated command.

Strategy: check the cheap things first and in the order a reply can be most helpful.
Size, encoding and JSON shape fail as ``INVALID_MESSAGE`` with nothing echoed; once
the body is an object its ``command_id`` and ``type`` are picked up (when well formed)
so every later error can be answered against them; then the routing key, the
envelope (``v``, ``command_id``, ``type``) and finally the model. Error details name
fields and rules, never values.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, NoReturn

from pydantic import ValidationError

from .commands import COMMAND_TYPES, ONE_OF, Command
from .common import MAX_BODY_BYTES, TENANT_RE, ContractError, ErrorCode, normalize_uuid
from .policy import ADMIN_COMMAND_TYPES, ADMIN_TENANT

__all__ = ["decode_command", "is_expired"]

PHONE_FIELDS = frozenset({"destination_number", "caller_id_number", "phone", "phone_number"})
# An admin command's body names the tenant it acts on as "tenant"; the model calls it this.
_TARGET = "target"

# A body "type" is echoed in the reply only when it looks like a type name: anything
# else (a newline, 60 KiB of text) is not worth repeating back.
_ECHO_TYPE_RE = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")


def decode_command(routing_key: str, body: bytes) -> Command:
    """Decode and validate one command; raise ContractError saying what is wrong."""
    obj = _parse_object(body)
    command_id, command_type = _echo_ids(obj)

    def fail(code: ErrorCode, message: str, field: str | None = None) -> NoReturn:
        details = {"field": field} if field is not None else {}
        raise ContractError(
            code, message, details=details, command_id=command_id, command_type=command_type
        )

    tenant, _, route_type = routing_key.partition(".")
    if TENANT_RE.match(tenant) is None:
        fail(
            ErrorCode.VALIDATION_ERROR,
            "routing key must be <tenant>.<type> with a tenant matching [a-z0-9][a-z0-9_-]{0,62}",
            "routing_key",
        )
    # The admin tenant has commands of its own, some named like a tenant's (stats.get).
    model = (ADMIN_COMMAND_TYPES if tenant == ADMIN_TENANT else COMMAND_TYPES).get(route_type)
    # Admin commands exist for the reserved tenant only, and it runs nothing else.
    if model is None or model.ADMIN != (tenant == ADMIN_TENANT):
        fail(ErrorCode.UNKNOWN_COMMAND, "the routing key names no known command", "routing_key")
    version = obj.get("v")
    if type(version) is not int or version != 1:
        fail(ErrorCode.VALIDATION_ERROR, "v must be the integer 1", "v")
    if command_id is None:
        fail(ErrorCode.VALIDATION_ERROR, "command_id must be a UUID", "command_id")
    if obj.get("type") != route_type:
        fail(ErrorCode.VALIDATION_ERROR, "type must equal the routing key's type part", "type")
    return _validate(model, obj, tenant, command_id, command_type)


def is_expired(
    command: Command,
    *,
    now: datetime,
    published_at: datetime | None,
    received_at: datetime,
    max_age_s: float,
) -> bool:
    """Whether the command must not be executed any more.

    With ``expires_at``, only that instant counts. Without it, the command's age is
    measured from the AMQP ``timestamp`` (``published_at``) or, lacking one, from
    receipt. Naive datetimes are taken as UTC.
    """
    now = _aware(now)
    if command.expires_at is not None:
        return now > _aware(command.expires_at)
    since = _aware(published_at if published_at is not None else received_at)
    return (now - since).total_seconds() > max_age_s


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, whatever Python's json module accepts by default.
    raise ValueError("non-standard JSON constant")


def _parse_object(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise ContractError(ErrorCode.INVALID_MESSAGE, f"body exceeds {MAX_BODY_BYTES} bytes")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise ContractError(ErrorCode.INVALID_MESSAGE, "body is not UTF-8") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and integers too long to convert.
        raise ContractError(ErrorCode.INVALID_MESSAGE, "body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ContractError(ErrorCode.INVALID_MESSAGE, "body is not a JSON object")
    return obj


def _echo_ids(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    raw_id = obj.get("command_id")
    command_id = normalize_uuid(raw_id) if isinstance(raw_id, str) else None
    raw_type = obj.get("type")
    ok_type = isinstance(raw_type, str) and _ECHO_TYPE_RE.match(raw_type) is not None
    return command_id, raw_type if ok_type else None


def _validate(
    model: type[Command],
    obj: dict[str, Any],
    tenant: str,
    command_id: str,
    command_type: str | None,
) -> Command:
    data = dict(obj)
    # The tenant is the routing key's; field names that have a wire alias (from_) are
    # only accepted under the alias.
    body_tenant = data.pop("tenant", None)
    data.pop(_TARGET, None)
    if model.ADMIN and body_tenant is not None:
        data[_TARGET] = body_tenant
    for name, field in model.model_fields.items():
        if field.alias is not None and field.alias != name:
            data.pop(name, None)
    data["tenant"] = tenant
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, command_id, command_type) from None


def _from_validation(
    exc: ValidationError, command_id: str, command_type: str | None
) -> ContractError:
    raw = exc.errors(include_url=False, include_input=False, include_context=False)
    for err in raw:
        if err["loc"] and err["loc"][0] == _TARGET:
            err["loc"] = ("tenant", *err["loc"][1:])
    errors = [{"field": _dotted(err["loc"]), "message": _message(err)} for err in raw]
    first = raw[0]
    field = errors[0]["field"]
    is_phone = bool(first["loc"]) and first["loc"][0] in PHONE_FIELDS
    if is_phone and first["type"] not in ("missing", ONE_OF):
        code = ErrorCode.INVALID_PHONE_NUMBER
    else:
        code = ErrorCode.VALIDATION_ERROR
    return ContractError(
        code,
        f"{field}: {errors[0]['message']}",
        details={"field": field, "errors": errors},
        command_id=command_id,
        command_type=command_type,
    )


# A ``connect`` object's errors name the kind it was read as (connect.number.timeout_s);
# the wire field is connect.timeout_s.
_CONNECT_KINDS = frozenset({"park", "number", "extension"})


def _dotted(loc: tuple[int | str, ...]) -> str:
    if len(loc) > 2 and loc[0] == "connect" and loc[1] in _CONNECT_KINDS:
        loc = (loc[0], *loc[2:])
    return ".".join(str(part) for part in loc)


def _message(err: Any) -> str:
    # pydantic's messages for the types used here describe the rule only; ours come
    # prefixed with "Value error, ".
    msg = str(err["msg"])
    prefix = "Value error, "
    return msg[len(prefix) :] if msg.startswith(prefix) else msg
