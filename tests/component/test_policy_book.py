"""The policy in force: the file, the stored overrides over it, reloads that keep the last good one."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from callworker.errors import ConfigError
from callworker.policy import PolicyBook
from callworker.store import make_engine, migrate
from tests.security.test_secrets import LogWatch

FILE = """\
admin_token: "admin-tok-1"
tenants:
  acme:
    token: "acme-tok-2"
    calls_per_minute: 60
    max_concurrent: 10
    rates:
      - {prefix: "+44", cents_per_minute: 2, increment_s: 60}
    users:
      alice: {can_call: false}
  beta:
    token: "beta-tok-3"
"""


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'policy.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(FILE)
    return path


@pytest.fixture
def logs() -> Iterator[LogWatch]:
    watch = LogWatch()
    logger = logging.getLogger("callworker.policy")
    logger.addHandler(watch)
    logger.setLevel(logging.INFO)
    yield watch
    logger.removeHandler(watch)


def test_without_a_file_nothing_is_limited(engine: Engine) -> None:
    book = PolicyBook(engine, None)
    book.load()
    tenant, user = book.limits("acme", "bob")
    assert tenant.model_dump() == {"can_call": None, "calls_per_minute": None, "calls_per_day": None,
                                   "max_concurrent": None}
    assert user is None and book.rates("acme") == ()
    assert book.tenant_for_token("") is None and not book.is_admin_token("")


def test_the_files_limits_users_and_rates_are_in_force(engine: Engine, policy_file: Path) -> None:
    book = PolicyBook(engine, policy_file)
    book.load()
    tenant, alice = book.limits("acme", "alice")
    assert (tenant.calls_per_minute, tenant.max_concurrent, tenant.can_call) == (60, 10, None)
    assert alice is not None and alice.can_call is False
    assert book.limits("acme", "bob")[1] is None  # no limits of his own: the tenant's apply
    assert [r.prefix for r in book.rates("acme")] == ["+44"]
    assert book.limits("other", None)[0].calls_per_minute is None
    assert book.tenant_for_token("acme-tok-2") == "acme" and book.tenant_for_token("beta-tok-3") == "beta"
    assert book.tenant_for_token("acme-tok-") is None and book.tenant_for_token("") is None
    assert book.is_admin_token("admin-tok-1") and not book.is_admin_token("acme-tok-2")


def test_stored_values_win_over_the_files_and_null_gives_the_file_back(engine: Engine, policy_file: Path) -> None:
    book = PolicyBook(engine, policy_file)
    book.load()
    book.set("acme", None, {"calls_per_minute": 5, "calls_per_day": 100})
    book.set("acme", "alice", {"can_call": True})
    book.set("acme", "bob", {"max_concurrent": 1})
    book.set("gamma", None, {"can_call": False, "rates": [{"prefix": "1", "cents_per_minute": "0.5"}]})
    tenant, alice = book.limits("acme", "alice")
    assert (tenant.calls_per_minute, tenant.calls_per_day, tenant.max_concurrent) == (5, 100, 10)
    assert alice is not None and alice.can_call is True
    bob = book.limits("acme", "bob")[1]
    assert bob is not None and bob.max_concurrent == 1
    assert book.limits("gamma", None)[0].can_call is False
    assert [str(r.cents_per_minute) for r in book.rates("gamma")] == ["0.5"]

    # Another node reading the same database sees the same policy.
    other = PolicyBook(engine, policy_file)
    other.load()
    assert other.in_force.limits == book.in_force.limits

    book.set("acme", None, {"calls_per_minute": None})
    assert book.limits("acme", None)[0].calls_per_minute == 60  # the file's again
    assert book.limits("acme", None)[0].calls_per_day == 100
    assert other.refresh_overrides() and other.limits("acme", None)[0].calls_per_minute == 60
    assert not other.refresh_overrides()  # nothing changed since


def test_described_policy_holds_no_token(engine: Engine, policy_file: Path) -> None:
    book = PolicyBook(engine, policy_file)
    book.load()
    book.set("acme", "bob", {"calls_per_day": 3})
    described = book.describe()
    assert set(described["tenants"]) == {"acme", "beta"}
    acme = described["tenants"]["acme"]
    assert acme["calls_per_minute"] == 60 and acme["users"]["alice"]["can_call"] is False
    assert acme["users"]["bob"]["calls_per_day"] == 3
    assert acme["overrides"] == {"tenant": {}, "users": {"bob": {"calls_per_day": 3}}}
    assert acme["rates"][0]["prefix"] == "+44"
    assert "tok" not in repr(described)
    assert book.describe("beta") == {"tenants": {"beta": {
        "can_call": None, "calls_per_minute": None, "calls_per_day": None, "max_concurrent": None,
        "rates": [], "users": {}, "overrides": {"tenant": {}, "users": {}}}}}


def test_a_broken_file_at_start_stops_the_start(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("tenants:\n  acme:\n    calls_per_minute: many\n")
    with pytest.raises(ConfigError, match=r"tenants\.acme\.calls_per_minute \(line 3\)"):
        PolicyBook(engine, path).load()
    with pytest.raises(ConfigError, match="cannot be read"):
        PolicyBook(engine, tmp_path / "absent.yaml").load()


def test_a_changed_file_is_read_and_a_broken_one_refused_keeping_the_last_good(
    engine: Engine, policy_file: Path, logs: LogWatch
) -> None:
    book = PolicyBook(engine, policy_file, file_poll_s=0.05)
    book.load()
    book.start()
    try:
        mark = logs.mark()
        policy_file.write_text(FILE.replace("calls_per_minute: 60", "calls_per_minute: 61"))
        logs.wait_for(lambda r: "loaded" in r.getMessage(), since=mark)
        assert book.limits("acme", None)[0].calls_per_minute == 61

        mark = logs.mark()
        policy_file.write_text(FILE.replace("calls_per_minute: 60", "calls_per_minute: -5").replace("beta", "bad!"))
        refused = logs.wait_for(lambda r: "refused" in r.getMessage(), since=mark)
        assert refused.levelno == logging.ERROR
        text = refused.getMessage()
        assert "last good policy stays in force" in text and "tok" not in text and "\n" not in text
        assert book.limits("acme", None)[0].calls_per_minute == 61

        mark = logs.mark()
        policy_file.write_text("")  # truncated by an editor: refused too
        logs.wait_for(lambda r: "refused" in r.getMessage() and "empty" in r.getMessage(), since=mark)
        assert book.limits("acme", None)[0].calls_per_minute == 61
    finally:
        book.stop()


def test_reload_on_demand_reads_the_file_at_once(engine: Engine, policy_file: Path) -> None:
    book = PolicyBook(engine, policy_file)
    book.load()
    policy_file.write_text(FILE.replace("max_concurrent: 10", "max_concurrent: 3"))
    assert book.reload_file() is True
    assert book.limits("acme", None)[0].max_concurrent == 3
    policy_file.write_text("tenants: [")
    assert book.reload_file() is False
    assert book.limits("acme", None)[0].max_concurrent == 3
