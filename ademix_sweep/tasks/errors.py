"""What every task shares that needs no torch: its one-line error, and the data fingerprint."""

from __future__ import annotations

import hashlib


class TaskError(Exception):
    """Bad task options or data, reported as one line: ``task.<field>: what (expected)``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"task.{field}: {message}" if field else message)
        self.field, self.message = field, message

    @property
    def loc(self) -> tuple[str, ...]:
        return ("task", *self.field.split(".")) if self.field else ("task",)


def fingerprint(*parts: bytes | str | memoryview) -> str:
    """A short, stable hash (sha256, 16 hex digits) of data and the settings that shaped it."""
    digest = hashlib.sha256()
    for part in parts:
        view = memoryview(part.encode() if isinstance(part, str) else part).cast("B")
        digest.update(view.nbytes.to_bytes(8, "little"))
        digest.update(view)
    return digest.hexdigest()[:16]
