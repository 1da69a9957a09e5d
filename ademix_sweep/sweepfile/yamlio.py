"""Safe YAML reading that remembers where each key came from, and `--set` overrides.

Only the safe loader is used: a ``!!python/...`` tag is an error, never executed. Duplicate keys
are errors (plain PyYAML keeps the last one silently). Every error is a :class:`SweepFileError`
whose text is one line: ``FILE:LINE: path.to.field: what is wrong (what was expected)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]
MAX_DEPTH = 32
MAX_BYTES = 1 << 20


class SweepFileError(Exception):
    """A bad sweep file or override, reported as one line."""

    def __init__(self, source: str, line: int | str | None, path: str, message: str) -> None:
        self.source, self.line, self.path, self.message = source, line, path, message
        where = f"{source}:{line}" if isinstance(line, int) else f"{source} ({line})" if line else source
        super().__init__(_printable(f"{where}: {path}: {message}" if path else f"{where}: {message}"))


def _printable(text: str) -> str:
    """One line whatever the file holds: a newline or control character in a key is escaped."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


@dataclass
class Document:
    """Parsed YAML data plus the line of every key (and list item), by path."""

    source: str
    data: Any
    lines: dict[Path_, int | str] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | str | None:
        """The line of the longest prefix of ``path`` that has one (a nested error points at it)."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None


def dotted(path: Path_) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int | str], source: str, depth: int = 0) -> None:
    """Record lines by path; reject duplicate keys, non-scalar keys and runaway nesting."""
    if depth > MAX_DEPTH:
        shown = dotted(path[:3]) + "..."
        raise SweepFileError(source, node.start_mark.line + 1, shown, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            key = key_node.value
            if key == "<<" and key_node.tag == "tag:yaml.org,2002:merge":
                continue  # a merge key: the merged keys are checked where they are defined
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                shown = key if isinstance(key_node, yaml.ScalarNode) else "a collection"
                raise SweepFileError(source, line, dotted(path), f"key {shown!r} is not a name (expected a plain name)")
            if key in seen:
                raise SweepFileError(
                    source, line, dotted((*path, key)), f"duplicate key (first defined on line {seen[key]})"
                )
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, source, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), lines, source, depth + 1)


class _Loader(yaml.SafeLoader):
    """The safe loader, reading floats as YAML 1.2 does: ``1e-4`` is a number, not a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _load(text: str, source: str) -> tuple[Any, dict[Path_, int | str]]:
    """Compose, check (duplicates, key types, depth) and construct one document."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Path_, int | str] = {}
        if node is None:
            return None, lines
        _walk(node, (), lines, source)
        return loader.construct_document(node), lines
    finally:
        loader.dispose()


def parse_yaml(text: str, source: str) -> Document:
    """Parse one YAML document with the safe loader, keeping key lines."""
    try:
        data, lines = _load(text, source)
    except yaml.reader.ReaderError as exc:  # a control character
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        line = text.count("\n", 0, exc.position) + 1
        raise SweepFileError(source, line, "", f"YAML error: character {char!r} is not allowed") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if "could not determine a constructor" in str(exc.problem):
            problem = f"tag {exc.problem.split('tag ', 1)[-1]} is not allowed (plain YAML values only)"
        raise SweepFileError(source, mark.line + 1 if mark else None, "", f"YAML error: {problem}") from None
    except yaml.YAMLError as exc:
        raise SweepFileError(source, None, "", f"YAML error: {str(exc).splitlines()[0]}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. "!!int 0.5": a tag the value can't take
        raise SweepFileError(source, None, "", f"YAML error: a value cannot be read ({exc})") from None
    except RecursionError:
        raise SweepFileError(source, None, "", f"nested deeper than {MAX_DEPTH} levels") from None
    return Document(source, data, lines)


def read_document(path: str | Path) -> Document:
    """Read and parse a sweep file; a missing, unreadable, binary or huge file is a SweepFileError."""
    source = str(path)
    p = Path(path)
    if not p.exists():
        raise SweepFileError(source, None, "", "no such file")
    if p.is_dir():
        raise SweepFileError(source, None, "", "is a directory (expected a YAML sweep file)")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SweepFileError(source, None, "", f"cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise SweepFileError(source, None, "", f"is {len(raw)} bytes (expected a sweep file under 1 MiB)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SweepFileError(source, None, "", "is not UTF-8 text (expected a YAML sweep file)") from None
    if "\x00" in text:
        raise SweepFileError(source, None, "", "is a binary file (expected a YAML sweep file)")
    return parse_yaml(text, source)


def apply_override(doc: Document, override: str, *, flag: str = "--set", under: Path_ = ()) -> None:
    """Apply one ``path.to.field=value`` (value in YAML syntax) to the document's data in place.

    ``under`` prefixes the path (``--param lr=...`` is ``optimizers.<name>.lr``); ``flag`` names
    the option in messages.
    """
    key, sep, value_text = override.partition("=")
    label = f"{flag} {key.strip()}"
    if not sep or not key.strip():
        raise SweepFileError(doc.source, None, f"{flag} {override}", "expected path.to.field=value")
    path = (*under, *(part.strip() for part in key.strip().split(".")))
    if any(not part for part in path):
        raise SweepFileError(doc.source, None, label, "empty name in the path (expected path.to.field=value)")
    try:
        value = parse_yaml(value_text, label).data
    except SweepFileError as exc:
        raise SweepFileError(doc.source, None, label, exc.message) from None
    if not isinstance(doc.data, dict):
        raise SweepFileError(doc.source, None, label, "the file's top level is not a mapping")
    node = doc.data
    for depth, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise SweepFileError(
                doc.source, None, label, f"{where} is not a mapping, so it has no field {path[depth + 1]}"
            )
        node = child
    node[path[-1]] = value
    doc.lines = {p: line for p, line in doc.lines.items() if p[: len(path)] != path}
    doc.lines[path] = label
