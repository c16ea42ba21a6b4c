"""Shared fixtures. gevent is patched first, before anything imports socket or psycopg."""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import subprocess  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import psycopg  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CAPTURES = FIXTURES / "esl"
FREESWITCH_CAPTURES = FIXTURES / "freeswitch-1.10.12"
PG_ADMIN_URL = os.environ.get("CALLWORKER_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
AMQP_HOST = os.environ.get("CALLWORKER_TEST_AMQP_HOST", "127.0.0.1:5672")

# Hypothesis: in CI (CI set, as .ci/run does) every run draws the same examples, so a
# failure there is a failure of the code, reproducible anywhere with CI=1; locally each
# run explores new ones. Neither has a deadline: no test here is about a draw's speed,
# and a loaded machine must not fail one. Loaded before the test modules build their
# own settings, which inherit from it. HYPOTHESIS_PROFILE picks one by name.
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, max_examples=100, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    """The real ESL captures (tests/fixtures/esl, sources in its SOURCES.md)."""
    assert CAPTURES.is_dir(), f"captures not found at {CAPTURES}"
    return CAPTURES


@pytest.fixture(scope="session")
def freeswitch_captures_dir() -> Path:
    """Raw traffic of a real FreeSWITCH 1.10.12 (tests/fixtures/freeswitch-1.10.12)."""
    assert FREESWITCH_CAPTURES.is_dir(), f"captures not found at {FREESWITCH_CAPTURES}"
    return FREESWITCH_CAPTURES


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"callworker_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def amqp_vhost() -> Iterator[str]:
    """A fresh RabbitMQ vhost for this test session (guest may use it), deleted at the end."""
    vhost = f"callworker-test-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield vhost
    _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def amqp_url(amqp_vhost: str) -> str:
    return f"amqp://guest:guest@{AMQP_HOST}/{amqp_vhost}"
