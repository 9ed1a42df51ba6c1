"""Stripe's search API: the query language and an eventually consistent index.

Stripe indexes objects asynchronously ("normally within a minute"), so a search right
after a write may miss it or see the object as it was. The index keeps every object's
recent versions with the time they were written and answers from the newest version
older than the indexing delay.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stripe_sync.emulator.errors import invalid_request

SEARCH_FIELDS = {
    "product": {"active", "created", "description", "metadata", "name", "shippable", "url"},
    "price": {"active", "created", "currency", "lookup_key", "metadata", "product", "type"},
}
_MAX_CLAUSES = 10

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<negate>-)?
        (?P<field>[a-z_]+)(?:\[(?P<mq>['"])(?P<mkey>.*?)(?P=mq)\])?
        (?P<op>>=|<=|:|~|>|<)
        (?:(?P<q>['"])(?P<quoted>(?:\\.|(?!(?P=q)).)*)(?P=q)|(?P<bare>[^\s'"]+))
      | (?P<joiner>AND|OR)
    )\s*""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Clause:
    negate: bool
    field: str
    metadata_key: str | None
    op: str
    value: str

    def matches(self, obj: dict) -> bool:
        if self.metadata_key is not None:
            actual = obj.get("metadata", {}).get(self.metadata_key)
        else:
            actual = obj.get(self.field)
        return self.negate != self._compare(actual)

    def _compare(self, actual: Any) -> bool:
        if self.op in (">", "<", ">=", "<="):
            try:
                left, right = float(actual), float(self.value)
            except (TypeError, ValueError):
                return False
            return {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}[
                self.op
            ]
        if self.value == "null" and self.op == ":":
            return actual in (None, "")
        if actual is None:
            return False
        text = str(actual).lower()
        if self.op == "~":
            return self.value.lower() in text
        return text == self.value.lower()


def parse_query(query: str, kind: str) -> Callable[[dict], bool]:
    """Compile a search query into a predicate; invalid queries answer as Stripe does."""
    clauses: list[Clause] = []
    joiners: set[str] = set()
    position = 0
    expect_clause = True
    while position < len(query):
        match = _TOKEN.match(query, position)
        if match is None or match.end() == position:
            raise _invalid(query, f"unexpected input at position {position}")
        position = match.end()
        if match["joiner"]:
            if expect_clause:
                raise _invalid(query, f"unexpected {match['joiner']}")
            joiners.add(match["joiner"])
            expect_clause = True
            continue
        if not expect_clause:
            raise _invalid(query, "clauses must be joined with AND or OR")
        field = match["field"]
        if field not in SEARCH_FIELDS[kind]:
            raise invalid_request(
                f"Field `{field}` is an unsupported search field for resource `{kind}s`. "
                f"See https://stripe.com/docs/search#query-fields-for-{kind}s for a list of supported fields.",
                param="query",
            )
        if (field == "metadata") != (match["mkey"] is not None):
            raise _invalid(query, "metadata must be queried as metadata['key']")
        if match["op"] == "~" and len(match["quoted"] or match["bare"] or "") < 3:
            raise _invalid(query, "substring matches (~) need at least 3 characters")
        value = match["quoted"] if match["quoted"] is not None else match["bare"]
        clauses.append(
            Clause(
                bool(match["negate"]),
                field,
                match["mkey"],
                match["op"],
                value.replace("\\'", "'").replace('\\"', '"'),
            )
        )
        expect_clause = False
    if not clauses or expect_clause:
        raise _invalid(query, "the query is empty or ends with AND/OR")
    if len(joiners) > 1:
        raise _invalid(query, "AND and OR can't be combined in one query")
    if len(clauses) > _MAX_CLAUSES:
        raise _invalid(query, f"at most {_MAX_CLAUSES} clauses are allowed")
    combine = any if joiners == {"OR"} else all
    return lambda obj: combine(clause.matches(obj) for clause in clauses)


def _invalid(query: str, why: str):
    return invalid_request(f"Invalid search query: {query!r} ({why}).", param="query")


class SearchIndex:
    """What search sees: per object, recent versions stamped with their write time."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._versions: dict[str, dict[str, deque]] = {"product": {}, "price": {}}

    def record(
        self, kind: str, object_id: str, snapshot: dict | None, *, at: float | None = None
    ) -> None:
        """Remember a write; `None` records a deletion."""
        versions = self._versions[kind].setdefault(object_id, deque())
        versions.append((self._clock() if at is None else at, snapshot))

    def visible(self, kind: str, delay_s: float) -> list[dict]:
        """Objects as the index shows them now, newest written first."""
        horizon = self._clock() - delay_s
        found = []
        for versions in reversed(self._versions[kind].values()):
            # Drop versions superseded by a newer one that is itself already indexed.
            while len(versions) > 1 and versions[1][0] <= horizon:
                versions.popleft()
            written_at, snapshot = versions[0]
            if written_at <= horizon and snapshot is not None:
                found.append(snapshot)
        found.sort(key=lambda obj: obj["created"], reverse=True)  # stable: ties stay newest first
        return found

    def clear(self) -> None:
        for by_id in self._versions.values():
            by_id.clear()
