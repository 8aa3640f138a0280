"""Tiny helpers used across the library (lucidrains style): no nested `if x is None` branches."""

from __future__ import annotations

from typing import Any


def exists(value: Any) -> bool:
    """True when value is not None."""
    return value is not None


def default(value: Any, fallback: Any) -> Any:
    """value, or fallback when value is None."""
    return value if exists(value) else fallback
