"""The design's dependency rules, checked by reading every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "callworker"
IO_MODULES = ("gevent", "socket", "pika", "sqlalchemy", "greenswitch", "psycopg", "alembic")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(*parts: str) -> list[Path]:
    target = PACKAGE.joinpath(*parts)
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


def offending(paths: list[Path], banned: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for path in paths:
        hits = sorted(
            name for name in imports_of(path)
            if any(name == b or name.startswith(b + ".") for b in banned)
        )
        if hits:
            bad[str(path.relative_to(PACKAGE))] = hits
    return bad


@pytest.mark.parametrize(
    "paths",
    [modules("contract"),
     [path for name in ("codec", "frames", "events", "encoding", "commands") for path in modules("esl", f"{name}.py")],
     modules("esl", "builders.py"), modules("esl", "causes.py"), modules("calls", "states.py")],
    ids=["contract", "codec", "builders", "causes", "state table"],
)
def test_pure_parts_do_no_io(paths: list[Path]) -> None:
    assert offending(paths, IO_MODULES) == {}


def test_store_knows_neither_rabbitmq_nor_freeswitch() -> None:
    banned = ("pika", "greenswitch", "callworker.esl", "callworker.bus", "callworker.calls")
    assert offending(modules("store"), banned) == {}


def test_bus_knows_neither_freeswitch_nor_the_database() -> None:
    banned = ("greenswitch", "sqlalchemy", "psycopg", "callworker.esl", "callworker.store",
              "callworker.calls")
    assert offending(modules("bus"), banned) == {}


def test_esl_knows_neither_rabbitmq_nor_the_database() -> None:
    banned = ("pika", "sqlalchemy", "psycopg", "callworker.bus", "callworker.store",
              "callworker.calls")
    assert offending(modules("esl"), banned) == {}


def test_simulator_uses_only_the_codec_and_builders() -> None:
    allowed = {"callworker.esl.codec", "callworker.esl.builders", "callworker.esl.causes", "callworker.errors"}
    for path in modules("simulator"):
        ours = {name for name in imports_of(path) if name.startswith("callworker")}
        ours = {name for name in ours if not name.startswith("callworker.simulator")}
        assert ours <= allowed, (path.name, ours - allowed)
        assert offending([path], ("pika", "sqlalchemy", "greenswitch")) == {}


def _names_cli(name: str) -> bool:
    return name == "callworker.cli" or name.startswith("callworker.cli.")


def test_nothing_imports_the_cli() -> None:
    outside = [p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE / "cli" and p.name != "__main__.py"]
    users = [p for p in outside if any(_names_cli(name) for name in imports_of(p))]
    assert [str(p.relative_to(PACKAGE)) for p in users] == []


def test_the_operator_commands_speak_only_the_contract() -> None:
    """call, watch, cdr and stats reach the worker through bus/ or store/, never its internals."""
    allowed = ("callworker.contract", "callworker.bus", "callworker.store", "callworker.config",
               "callworker.errors", "callworker.cli")
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        if path.name == "worker.py":
            continue  # run, simulate, demo: they start the worker and the simulator themselves
        ours = {name for name in imports_of(path) if name.startswith("callworker")}
        assert {name for name in ours if not name.startswith(allowed)} == set(), path.name
        assert offending([path], ("greenswitch", "callworker.esl", "callworker.calls")) == {}


def test_only_the_service_layer_and_wiring_combine_esl_bus_and_store() -> None:
    layers = ("callworker.esl", "callworker.bus", "callworker.store")
    combiners = {"calls", "flashcall"}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in combiners or relative.name == "app.py":
            continue
        used = {layer for layer in layers for name in imports_of(path)
                if name == layer or name.startswith(layer + ".")}
        assert len(used) <= 1, (str(relative), used)


def test_policy_knows_neither_freeswitch_nor_rabbitmq_nor_the_calls() -> None:
    banned = ("pika", "greenswitch", "callworker.esl", "callworker.bus", "callworker.calls",
              "callworker.flashcall")
    assert offending(modules("policy"), banned) == {}


def test_store_knows_nothing_of_the_policy() -> None:
    # The policy reads its counts from the store, never the other way round.
    assert offending(modules("store"), ("callworker.policy",)) == {}
