"""Pydantic validation errors -> one-line sweep-file messages: ``FILE:LINE: path: what (expected)``."""

from __future__ import annotations

from typing import Any

from ademix_sweep.sweepfile.dists import did_you_mean
from ademix_sweep.sweepfile.yamlio import Document, SweepFileError, dotted

PATTERN_HELP = {
    "name": "letters, digits, '_', '.' or '-', starting with a letter or digit, at most 100 characters",
    "entrypoint": "'package.module:function'",
}


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic's error location mapped onto the data's keys (union tags dropped)."""
    path: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        elif i == len(loc) - 1 and isinstance(part, str) and not part.startswith(("function-", "list[")):
            path.append(part)  # a missing field
    return tuple(path)


def to_file_error(doc: Document, err: dict[str, Any], task_kinds: tuple[str, ...]) -> SweepFileError:
    """A pydantic error as a SweepFileError: the data's own path, its line, and a plain message."""
    path = _data_path(doc.data, err["loc"])
    if err["type"] == "unknown_key":
        path = (*path, err["ctx"]["key"])
    elif err["type"].startswith("union_tag"):
        path = (*path, "kind")
    return SweepFileError(doc.source, doc.line_of(path), dotted(path), _message(err, path, task_kinds))


def _message(err: dict[str, Any], path: tuple[Any, ...], task_kinds: tuple[str, ...]) -> str:
    kind, ctx, value = err["type"], err.get("ctx", {}), err.get("input")
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    expected = {
        "int_type": "an integer", "int_from_float": "an integer", "float_type": "a number",
        "bool_type": "true or false", "string_type": "a string", "list_type": "a list",
        "dict_type": "a mapping", "model_type": "a mapping", "tuple_type": "a list",
    }  # fmt: skip
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in ("sweep", "unknown_key"):
        return ctx["message"]
    if kind == "missing":
        return "missing (a required field)"
    if kind in expected:
        return f"{shown} is the wrong type (expected {expected[kind]})"
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"{shown} is out of range (expected {bounds[kind]} {limit})"
    if kind == "literal_error":
        return f"{shown} is not allowed (expected {ctx['expected']})"
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        return f"unknown task kind {tag!r} (expected one of {', '.join(task_kinds)}{did_you_mean(tag, task_kinds)})"
    if kind == "union_tag_not_found":
        return f"missing kind (expected one of {', '.join(task_kinds)})"
    if kind == "string_pattern_mismatch":
        wanted = PATTERN_HELP.get(path[-1] if path else "", f"the pattern {ctx['pattern']}")
        return f"{shown} is not a valid {path[-1] if path else 'value'} (expected {wanted})"
    if kind in ("too_short", "too_long"):
        return f"{ctx.get('actual_length')} items (expected {err['msg'].split('should have ')[-1].split(' after')[0]})"
    return f"{err['msg']}"
