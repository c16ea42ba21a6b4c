"""Reading the policy file (YAML, or JSON when it ends in ``.json``) into a ``PolicyFile``.

Strategy: every way a file can be wrong ends in one ``PolicyFileError`` whose
message is a single line naming the key (as a dotted path) and, where it can be
found, the line of the file. Messages never quote the file's text: it holds
tokens. An empty file is refused too: an editor that truncates the file before
writing it must not lift every limit for a moment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from callworker.policy.model import PolicyFile

__all__ = ["PolicyFileError", "file_bytes", "parse_policy", "read_policy_file"]


class PolicyFileError(ValueError):
    """The policy file cannot be used; the message is one line, without the file's values."""


def file_bytes(path: Path) -> bytes | None:
    """The file's content, or None when it cannot be read (what tells that it changed)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def read_policy_file(path: Path, content: bytes | None = None) -> PolicyFile:
    """The policy in the file (or in ``content``, read from it already)."""
    if content is None:
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise PolicyFileError(f"the file cannot be read ({exc.strerror})") from None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyFileError("the file is not UTF-8") from None
    return parse_policy(text, as_json=path.suffix.lower() == ".json")


def parse_policy(text: str, *, as_json: bool = False) -> PolicyFile:
    """The policy in ``text``; PolicyFileError saying what is wrong, and where."""
    if not text.strip():
        raise PolicyFileError("the file is empty")
    data = _load_json(text) if as_json else _load_yaml(text)
    if not isinstance(data, dict):
        raise PolicyFileError("the file must hold a mapping (admin_token, tenants)")
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyFileError(_describe(exc, text)) from None


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # exc.msg names the problem only; the position says where.
        raise PolicyFileError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


def _load_yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"not valid YAML: {_yaml_problem(exc)}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # str(exc) quotes the offending line, which may hold a token: rebuild it without.
    problem = getattr(exc, "problem", None) or "cannot be parsed"
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return str(problem)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"


def _describe(exc: ValidationError, text: str) -> str:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    # A refused mapping key is reported at "<path>.<key>.[key]": the key is the place.
    path = tuple(part for part in first["loc"] if part != "[key]")
    where = ".".join(str(part) for part in path) or "(top level)"
    line = _line_of(text, path)
    at = f" (line {line})" if line is not None else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f"; {len(errors) - 1} more error(s)" if len(errors) > 1 else ""
    return f"{where}{at}: {message}{more}"


def _line_of(text: str, path: tuple[Any, ...]) -> int | None:
    """The line of the deepest key of ``path`` the file has (JSON is read as YAML here)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if found is None:
                break
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
