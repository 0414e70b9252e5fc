"""The one number formatter of glassnet's texts (CLI summaries and the HTML report)."""

from __future__ import annotations

from typing import Any

__all__ = ["fmt"]


def fmt(v: Any) -> str:
    """Floats to 4 significant digits; lists and dicts item by item; anything else as str."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items())
    return str(v)
