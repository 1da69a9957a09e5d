"""Storage URLs: which one a sweep uses, the SQLite file behind one, and its secrets masked."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from sqlalchemy.engine import make_url

ENV_STORAGE = "ADEMIX_SWEEP_STORAGE"
SECRET_KEYS = ("password", "passwd", "pwd", "secret", "token")  # query parameters masked like a password


def resolve_storage_url(cli: str | None, in_file: str | None, name: str, env: dict[str, str] | None = None) -> str:
    """``--storage``, else the file's ``storage:``, else $ADEMIX_SWEEP_STORAGE, else
    ``sqlite:///runs/<name>.db`` (relative to the working directory)."""
    env = os.environ if env is None else env
    return cli or in_file or env.get(ENV_STORAGE) or f"sqlite:///runs/{name}.db"


def logs_dir(url: str, name: str) -> str:
    """Where command trials' logs go: beside a SQLite file (``runs/NAME.db`` -> ``runs/NAME.logs``),
    else ``runs/NAME.logs`` in the working directory."""
    path = sqlite_path(url)
    return str(Path(path).with_suffix(".logs")) if path else str(Path("runs") / f"{name}.logs")


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite storage URL; None for other databases, in-memory SQLite or a bad URL."""
    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def split_url(url: str) -> tuple[str, str, str, str] | None:
    """(scheme, user-info, host and path, query) of ``scheme://user-info@host/path?query``; the
    user-info runs to the *last* ``@`` (an unencoded ``@`` in a password stays in it)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    main, _, query = rest.partition("?")
    creds, at, host = main.rpartition("@")
    return scheme, creds if at else "", host if at else main, query


def secrets(url: str) -> list[str]:
    """Every secret the URL holds: the password as written and as decoded, and secret query values."""
    parts = split_url(url)
    if parts is None:
        return []
    found = []
    creds, query = parts[1], parts[3]
    if ":" in creds:
        found.append(creds.split(":", 1)[1])
    for key, value in parse_qsl(query, keep_blank_values=False):
        if any(word in key.lower() for word in SECRET_KEYS):
            found.append(value)
    found += [unquote(s) for s in found]
    return sorted({s for s in found if s}, key=len, reverse=True)  # longest first: no half-masked secret


def mask_url(url: str) -> str:
    """The URL with its password and secret query values replaced by ``***`` (also when it does not parse)."""
    parts = split_url(url)
    if parts is None:
        return url
    scheme, creds, host, query = parts
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    masked_query = "&".join(
        f"{key}=***" if any(word in key.lower() for word in SECRET_KEYS) else f"{key}={value}"
        for key, value in parse_qsl(query, keep_blank_values=True)
    )
    return f"{scheme}://{creds + '@' if creds else ''}{host}{'?' + masked_query if masked_query else ''}"


def scrub(text: str, url: str) -> str:
    """``text`` with every secret of ``url`` replaced by ``***``."""
    for secret in secrets(url):
        text = text.replace(secret, "***")
    return text
