"""Reading through PostgREST to the end, for the catalog and the state alike.

A project answers at most its "Max rows" a request (PostgREST's `db-max-rows`, 1,000 on
Supabase unless changed) whatever `limit` asks, so every read goes on until a page proves the
end (`keyset_pages`). Ids are asked for in `in` lists short enough for a URL (`id_chunks`),
each value double-quoted (`quoted`), so PostgREST's syntax characters in an id are read as
text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from urllib.parse import quote_plus

PAGE_SIZE = 1_000  # rows a keyset page asks for at least: Supabase's default cap
# The URL-encoded length of one `in` list of ids: with the select list and the filters beside
# it, a request URL stays well under the ~8 KB that servers and proxies take.
ID_LIST_CHARS = 5_000


def keyset_pages(
    read: Callable[[dict | None], list[dict]], *, most: int | None = None
) -> Iterator[list[dict]]:
    """The pages of a keyset read, to its very end: `read(last)` answers the rows after `last`
    (the previous page's last row; None: from the start). PostgREST answers min(limit,
    db-max-rows, rows left) rows, and the client knows no cap: a first page shorter than
    asked may just be capped, so the end is a page shorter than the longest yet, an empty
    one, or `most` rows in all (all the read can hold, e.g. one row an id)."""
    last, longest, seen = None, 0, 0
    while page := read(last):
        yield page
        seen += len(page)
        if len(page) < longest or (most is not None and seen >= most):
            return
        longest, last = len(page), page[-1]


def id_chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    """`ids` in runs whose `in` list (`listed`) is at most ID_LIST_CHARS URL-encoded; a run
    holds one id at least."""
    chunk: list[str] = []
    length = 0
    for id_ in ids:
        size = len(quote_plus(quoted(id_))) + len("%2C")
        if chunk and length + size > ID_LIST_CHARS:
            yield chunk
            chunk, length = [], 0
        chunk.append(id_)
        length += size
    if chunk:
        yield chunk


def listed(values: Sequence[str]) -> str:
    """The criteria of an `in` filter (`in.(...)`), every value `quoted`."""
    return "(" + ",".join(map(quoted, values)) + ")"


def quoted(value: str) -> str:
    """A value inside a PostgREST logic tree (`or=(...)`) or `in` list: double-quoted, so
    commas, parentheses and dots in it are not read as syntax."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
