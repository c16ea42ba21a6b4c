"""Flash-call codes: generation, the keyed hash that is stored instead, masks, comparison.

The clear code exists only in the command that supplied it, the reply that
returns it, and the originate command that dials it. What is kept is
``HMAC-SHA256(key, "<order_id>:<code>")``: without the key the hash says nothing
about the code, and binding the order id in means two orders with the same code
do not share a hash. Comparison is constant-time over the hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

__all__ = [
    "cid_digits",
    "code_hmac",
    "code_matches",
    "generate_code",
    "is_valid_code",
    "mask",
    "pick_prefix",
    "submitted_code",
]

_DIGITS = re.compile(r"\A[0-9]+\Z")


def generate_code(length: int) -> str:
    """A uniformly random code of ``length`` digits (leading zeros allowed)."""
    if length < 1:
        raise ValueError("a code has at least one digit")
    return str(secrets.randbelow(10**length)).zfill(length)


def is_valid_code(code: str, length: int) -> bool:
    """Whether a code supplied by the client has the configured length and only digits."""
    return len(code) == length and _DIGITS.match(code) is not None


def pick_prefix(prefixes: Sequence[str]) -> str:
    """One caller ID prefix from the configured pool."""
    if not prefixes:
        raise ValueError("the prefix pool is empty")
    return prefixes[secrets.randbelow(len(prefixes))]


def mask(prefix: str, length: int) -> str:
    """The caller ID as it may be shown anywhere: the prefix, then one ``*`` per code digit."""
    return prefix + "*" * length


def cid_digits(prefix: str) -> str:
    """The prefix as a caller ID reads in a call log: digits only."""
    return prefix.lstrip("+")


def code_hmac(key: bytes, order_id: str, code: str) -> str:
    """The keyed hash stored in place of the code (hex)."""
    message = f"{order_id}:{code}".encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def submitted_code(submitted: str, prefix: str, length: int) -> str | None:
    """The code part of what the user typed: the code alone, or the whole caller ID.

    None when it is neither shape (such an attempt is simply wrong).
    """
    if len(submitted) == length:
        return submitted
    digits = cid_digits(prefix)
    if len(submitted) == len(digits) + length and submitted.startswith(digits):
        return submitted[len(digits) :]
    return None


def code_matches(
    key: bytes, order_id: str, stored_hmac: str, submitted: str, *, prefix: str, length: int
) -> bool:
    """Whether ``submitted`` (code or whole caller ID) is the order's code; constant-time."""
    candidate = submitted_code(submitted, prefix, length)
    # A hash is computed and compared whatever the shape, so every attempt costs the same.
    digest = code_hmac(key, order_id, candidate if candidate is not None else "")
    same = hmac.compare_digest(digest, stored_hmac)
    return same and candidate is not None
