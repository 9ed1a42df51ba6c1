"""A plan, for people (counts and a readable diff of a sample) and for automation (JSON).

Batches are added one at a time, so a plan of a million rows keeps only its counts and
sample in memory (and, for JSON, one small dict per row).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from stripe_sync.core.mapping import DEFAULT_MAPPING, FieldMapping
from stripe_sync.core.planner import CHANGES, Action
from stripe_sync.core.wording import counted


class PlanSummary:
    """`mapping`: the catalog's field mapping, shown with the plan and in each diff line
    (`name <- title: 'Hat'`) when it is not the default."""

    def __init__(
        self, *, sample: int = 20, every_row: bool = False, mapping: FieldMapping = DEFAULT_MAPPING
    ):
        self.mapping = mapping
        self.batches = 0
        self.products = 0
        self.counts: Counter[str] = Counter()
        self.sample: list[Action] = []
        self._sample_size = sample
        self._rows: list[dict] | None = [] if every_row else None

    def add(self, batch: str, actions: Sequence[Action]) -> None:
        self.batches += 1
        self.products += len(actions)
        for action in actions:
            self.counts[action.change] += 1
            if action.change != "unchanged" and len(self.sample) < self._sample_size:
                self.sample.append(action)
            if self._rows is not None:
                self._rows.append(self._row(batch, action))

    @property
    def changes(self) -> dict[str, int]:
        """Rows per change, every change listed (zeros included)."""
        return {change: self.counts.get(change, 0) for change in CHANGES}

    def to_json(self) -> dict:
        """Counts, and (with `every_row`) each product's action, fields and diff."""
        summary = {"batches": self.batches, "products": self.products, "counts": self.changes}
        if not self.mapping.is_default:
            summary["mapping"] = self.mapping.describe()
        if self._rows is not None:
            summary["actions"] = self._rows
        return summary

    def to_markdown(self) -> str:
        """The counts, then the diff of the sample: rows that would change or are invalid."""
        changes = self.changes
        changing = self.products - changes["unchanged"]
        lines = [
            f"# Plan: {counted(self.products, 'product')} in {counted(self.batches, 'batch')}",
            "",
            "| " + " | ".join(changes) + " |",
            "|" + " ---: |" * len(changes),
            "| " + " | ".join(str(count) for count in changes.values()) + " |",
        ]
        if not self.mapping.is_default:
            lines += ["", "## Field mapping", ""] + [
                f"- {line}" for line in self.mapping.describe()
            ]
        if self.sample:
            lines += ["", f"## Changes (first {len(self.sample)} of {changing})", ""]
            for action in self.sample:
                lines.append(f"- **{action.cms_id}**: {action.change}")
                lines += [f"  - {line}" for line in self._diff(action)]
        return "\n".join(lines) + "\n"

    def _row(self, batch: str, action: Action) -> dict:
        return {
            "batch": batch,
            "cms_id": action.cms_id,
            "stripe_product_id": (
                action.desired.stripe_id if action.desired else action.state.stripe_product_id
            ),
            "change": action.change,
            "fields": list(action.fields),
            "diff": self._diff(action),
        }

    def _diff(self, action: Action) -> list[str]:
        """The action's diff, each field named with the catalog column it came from where the
        mapping renames it: `price <- price_cents: '12.50 EUR'`."""
        return [self._sourced(line) for line in action.diff()]

    def _sourced(self, line: str) -> str:
        name, colon, rest = line.partition(": ")
        column = self.mapping.columns.get(name)
        if not colon or column is None or column == name:
            return line
        return f"{name} <- {column}: {rest}"
