"""Replies to commands (CONTRACT.md section 4) and the one JSON encoder for the wire."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from .common import ContractError, to_iso

__all__ = ["encode_json", "reply_error", "reply_ok"]


def reply_ok(command_id: str, command_type: str, result: dict[str, Any]) -> dict[str, Any]:
    """The reply to a command that succeeded."""
    return {"v": 1, "command_id": command_id, "type": command_type, "ok": True, "result": result}


def reply_error(error: ContractError) -> dict[str, Any]:
    """The reply to a command that failed; ``command_id``/``type`` are null when unknown."""
    return {
        "v": 1,
        "command_id": error.command_id,
        "type": error.command_type,
        "ok": False,
        "error": {
            "code": error.code.value,
            "message": error.message,
            "details": dict(error.details),
        },
    }


def encode_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON for a message body.

    Datetimes become ``to_iso`` strings, UUIDs strings, enums their values, Decimals
    numbers; NaN and infinities (not JSON) become null.
    """
    plain = _plain(obj)
    try:
        text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate cannot be written as UTF-8; \\u escapes keep the JSON valid.
        return json.dumps(plain, separators=(",", ":"), allow_nan=False).encode("ascii")


def _plain(obj: Any) -> Any:
    """A copy of ``obj`` made only of JSON types."""
    if obj is None or isinstance(obj, (bool, int, str)) and not isinstance(obj, Enum):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Enum):
        return _plain(obj.value)
    if isinstance(obj, datetime):
        return to_iso(obj)
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, UUID):
        return str(obj)
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            return None
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, BaseModel):
        return _plain(obj.model_dump(by_alias=True))
    if isinstance(obj, Mapping):
        return {_key(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_plain(v) for v in obj]
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def _key(key: Any) -> Any:
    if isinstance(key, Enum):
        return key.value
    if isinstance(key, UUID):
        return str(key)
    return key
