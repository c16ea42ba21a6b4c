"""CI draws the same hypothesis examples on every run; a developer's runs explore new ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, tests.conftest; from hypothesis import settings; d = settings.default; "
    "print(json.dumps({'derandomize': d.derandomize, 'database': d.database is not None, "
    "'deadline': d.deadline is not None, 'max_examples': d.max_examples}))"
)


def _profile(**env: str) -> dict[str, object]:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=60, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("value", ["1", "true"])
def test_under_ci_every_run_draws_the_same_examples(value: str) -> None:
    assert _profile(CI=value) == {"derandomize": True, "database": False, "deadline": False,
                                  "max_examples": 100}


def test_outside_ci_runs_explore_without_a_deadline() -> None:
    profile = _profile()
    assert profile["derandomize"] is False and profile["deadline"] is False


def test_the_ci_script_sets_ci_before_running_the_tests() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'export CI="${CI:-1}"' in script
    assert script.index('export CI="${CI:-1}"') < script.index("make test")
