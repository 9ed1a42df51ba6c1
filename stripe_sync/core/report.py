"""The migration report: what the latest run of every batch did, in numbers and rows."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS = ("created", "updated", "unchanged", "archived", "orphaned", "invalid", "failed")
PRICE_RESULTS = ("created", "archived", "unchanged")
_REMOVED = {
    "archived": "deleted from the catalog: archived in Stripe",
    "orphaned": "deleted from the catalog, still live in Stripe (mirror mode archives it)",
}


@dataclass
class Report:
    mode: str
    batches: int
    products: int
    counts: dict[str, int]
    stripe_requests: int
    stripe_seconds: float
    catalog_retries: int = 0  # retried catalog and state calls of the batches' latest runs
    catalog_longest_outage_s: float = 0.0  # the longest a call waited for the catalog
    failures: list[dict] = field(default_factory=list)
    invalid: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    # With a prices model: the products' prices created, archived and found as wanted.
    prices: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Products brought in sync per second of Stripe work."""
        worked = self.products - self.counts.get("unchanged", 0) - self.counts.get("invalid", 0)
        return worked / self.stripe_seconds if self.stripe_seconds else 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "rate_per_s": round(self.rate, 2)}

    def to_markdown(self, row_limit: int = 50) -> str:
        lines = [
            "# Migration report",
            "",
            f"Stripe mode: **{self.mode}**; {self.products} products in {self.batches} batches.",
            "",
            "| " + " | ".join(RESULTS) + " |",
            "|" + " ---: |" * len(RESULTS),
            "| " + " | ".join(str(self.counts.get(name, 0)) for name in RESULTS) + " |",
            "",
            (
                f"Stripe requests: {self.stripe_requests}; Stripe time {self.stripe_seconds:.1f} s; "
                f"rate {self.rate:.1f} products/s."
            ),
        ]
        if any(self.prices.values()):
            lines += [
                "",
                "Prices: "
                + ", ".join(f"{count} {name}" for name, count in self.prices.items())
                + ".",
            ]
        if self.catalog_retries:
            lines += [
                "",
                (
                    f"Catalog: {self.catalog_retries} calls retried; the longest outage "
                    f"{self.catalog_longest_outage_s:.1f} s."
                ),
            ]
        sections = (
            ("Failed", self.failures),
            ("Invalid (quarantined)", self.invalid),
            ("Deleted from the catalog", self.removed),
            ("Warnings", self.warnings),
        )
        for title, rows in sections:
            if rows:
                lines += [
                    "",
                    f"## {title} ({len(rows)})",
                    "",
                    "| catalog id | batch | reason |",
                    "| --- | --- | --- |",
                ]
                lines += [
                    f"| {table_cell(r['cms_id'])} | {table_cell(r['batch'])} | {table_cell(r['error'])} |"
                    for r in rows[:row_limit]
                ]
                if len(rows) > row_limit:
                    lines.append(f"\n… and {len(rows) - row_limit} more (see the JSON report).")
        return "\n".join(lines) + "\n"


def table_cell(value: object) -> str:
    """A value as a Markdown table cell: a pipe or a line break can't break the table."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def build_report(mode: str, batch_records: list[dict]) -> Report:
    """A report from each batch's final ledger record (`outcomes`, `requests`, `seconds`)."""
    counts: Counter[str] = Counter()
    prices: Counter[str] = Counter()
    failures, invalid, removed = [], [], []
    for record in batch_records:
        for outcome in record["outcomes"]:
            counts[outcome["result"]] += 1
            for name in PRICE_RESULTS:
                prices[name] += outcome.get(f"prices_{name}", 0)
            row = {"cms_id": outcome["cms_id"], "batch": record["batch"], "error": outcome["error"]}
            if outcome["result"] == "failed":
                failures.append(row)
            elif outcome["result"] == "invalid":
                invalid.append(row)
            elif outcome["result"] in _REMOVED:
                removed.append({**row, "error": _REMOVED[outcome["result"]]})
    return Report(
        mode=mode,
        batches=len(batch_records),
        products=sum(counts.values()),
        counts={name: counts.get(name, 0) for name in RESULTS},
        stripe_requests=sum(record["requests"] for record in batch_records),
        stripe_seconds=sum(record["seconds"] for record in batch_records),
        catalog_retries=sum(record.get("catalog_retries", 0) for record in batch_records),
        catalog_longest_outage_s=max(
            (record.get("catalog_longest_outage_s", 0.0) for record in batch_records), default=0.0
        ),
        failures=failures,
        invalid=invalid,
        removed=removed,
        warnings=[
            {"cms_id": w["cms_id"], "batch": record["batch"], "error": w["warning"]}
            for record in batch_records
            for w in record.get("warnings", [])
        ],
        prices={name: prices[name] for name in PRICE_RESULTS},
    )


def save_report(reports_dir: Path, report: Report) -> tuple[Path, Path]:
    """The report as JSON and Markdown, timestamped and as `migration_report_latest.*`;
    returns the timestamped (JSON, Markdown) paths."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    paths = []
    for suffix, text in (
        ("json", json.dumps(report.to_json(), indent=2)),
        ("md", report.to_markdown()),
    ):
        path = reports_dir / f"migration_report_{stamp}.{suffix}"
        path.write_text(text)
        (reports_dir / f"migration_report_latest.{suffix}").write_text(text)
        paths.append(path)
    return paths[0], paths[1]
