"""Counts in sentences: "1 batch", "2 batches"."""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """`count` and `noun`, the noun in the plural unless the count is one: "1 batch",
    "0 batches", "3 mismatches"."""
    return f"{count} {noun if count == 1 else _plural_of(noun)}"


def _plural_of(noun: str) -> str:
    """The regular English plural: batch -> batches, entry -> entries, row -> rows."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
        return noun[:-1] + "ies"
    return noun + "s"
