"""Counted nouns for what people read: "1 file", "2 files" (light: the quick `rtc stop` uses it)."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`count` and `noun`, in the plural (`nouns`, default noun + "s") unless it is one."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def some(items: list[str], shown: int = 3) -> str:
    """The first `shown` of `items`, comma-separated, and how many more."""
    head = ", ".join(items[:shown])
    return head + (f" and {len(items) - shown} more" if len(items) > shown else "")
