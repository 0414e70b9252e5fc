"""Keep secrets out of what glassnet writes and prints: a storage URL's password.

``--storage postgresql://alice:secret@host/db`` works, but the password must never reach a
file, the terminal or an error message. Files record the URL without it (``alice@host``), so a
resumed run reconnects through libpq's own sources (``PGPASSWORD``, ``~/.pgpass``); messages
show it masked (``alice:***@host``).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["mask_url", "public_settings", "strip_password"]

# scheme://user:password@ : the password is whatever lies between the first ':' after the user
# and the last '@' before the host (a password may itself contain '@' or ':')
_CREDENTIALS = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@]*):(?P<pw>.*)@(?P<rest>[^@]*)$")


def _replace(url: str, password: str | None) -> str:
    m = _CREDENTIALS.match(url)
    if m is None:
        return url
    secret = "" if password is None else f":{password}"
    return f"{m['head']}{secret}@{m['rest']}"


def mask_url(url: str | None) -> str | None:
    """The URL as it may be shown: its password, if any, replaced by ``***``."""
    return None if url is None else _replace(url, "***")


def strip_password(url: str | None) -> str | None:
    """The URL as it may be stored: its password, if any, removed."""
    return None if url is None else _replace(url, None)


def public_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A run's settings as they may be written to a file: ``storage`` without a password."""
    out = dict(settings)
    if out.get("storage"):
        out["storage"] = strip_password(out["storage"])
    return out
