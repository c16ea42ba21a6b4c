"""Flash-call codes: generation, the keyed hash kept instead of the code, masks, matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callworker.flashcall import codes
from callworker.flashcall.codes import (
    code_hmac,
    code_matches,
    generate_code,
    is_valid_code,
    mask,
    pick_prefix,
    submitted_code,
)

KEY = b"test-key"
ORDER = "0b8e7c1a-3f0e-4a43-9a35-5f0c1b2d3e4f"


def test_generated_codes_have_the_length_and_only_digits() -> None:
    for length in (3, 4, 6, 12):
        code = generate_code(length)
        assert len(code) == length and code.isdigit()


def test_generated_codes_keep_leading_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codes.secrets, "randbelow", lambda n: 7)
    assert generate_code(4) == "0007"


def test_generated_codes_use_every_digit() -> None:
    assert {generate_code(1) for _ in range(2000)} == set("0123456789")


def test_a_supplied_code_must_have_the_configured_length_and_only_digits() -> None:
    assert is_valid_code("0042", 4)
    assert not is_valid_code("042", 4) and not is_valid_code("00042", 4)
    assert not is_valid_code("12a4", 4) and not is_valid_code("１２３４", 4)


def test_the_mask_hides_each_digit() -> None:
    assert mask("7487260", 4) == "7487260****"
    assert mask("+7487260", 6) == "+7487260******"


def test_prefixes_come_from_the_pool() -> None:
    pool = ("111", "222", "333")
    assert {pick_prefix(pool) for _ in range(300)} == set(pool)
    with pytest.raises(ValueError):
        pick_prefix(())


def test_the_hash_depends_on_key_order_and_code_and_hides_the_code() -> None:
    digest = code_hmac(KEY, ORDER, "4821")
    assert len(digest) == 64 and "4821" not in digest
    assert digest == code_hmac(KEY, ORDER, "4821")
    assert digest != code_hmac(b"other-key", ORDER, "4821")
    assert digest != code_hmac(KEY, "another-order", "4821")
    assert digest != code_hmac(KEY, ORDER, "4822")


@pytest.mark.parametrize(
    ("submitted", "expected"),
    [("4821", "4821"), ("74872604821", "4821"), ("74872614821", None), ("482", None),
     ("48210", None), ("", None)],
)
def test_the_user_may_type_the_code_or_the_whole_caller_id(
    submitted: str, expected: str | None
) -> None:
    assert submitted_code(submitted, "7487260", 4) == expected


def test_a_prefix_with_plus_is_read_without_it() -> None:
    assert submitted_code("74872604821", "+7487260", 4) == "4821"


def test_matching_a_code_against_its_hash() -> None:
    stored = code_hmac(KEY, ORDER, "4821")

    def matches(submitted: str) -> bool:
        return code_matches(KEY, ORDER, stored, submitted, prefix="7487260", length=4)

    assert matches("4821") and matches("74872604821")
    assert not matches("4822") and not matches("74872614821") and not matches("48")
    assert not code_matches(b"other", ORDER, stored, "4821", prefix="7487260", length=4)


@given(
    prefix=st.from_regex(r"\A\+?[0-9]{1,7}\Z"),
    code=st.from_regex(r"\A[0-9]{4,8}\Z"),
    other=st.from_regex(r"\A[0-9]{4,8}\Z"),
)
def test_only_the_code_or_prefix_plus_code_verifies(prefix: str, code: str, other: str) -> None:
    stored = code_hmac(KEY, ORDER, code)
    length = len(code)
    assert code_matches(KEY, ORDER, stored, code, prefix=prefix, length=length)
    assert code_matches(KEY, ORDER, stored, prefix.lstrip("+") + code, prefix=prefix, length=length)
    if other not in (code, prefix.lstrip("+") + code):
        assert not code_matches(KEY, ORDER, stored, other, prefix=prefix, length=length)
