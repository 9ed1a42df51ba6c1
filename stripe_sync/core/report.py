"""The migration report: what the latest run of every batch did, in numbers and rows."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from stripe_sync.core.wording import counted

RESULTS = (
    "created",
    "adopted",
    "updated",
    "unchanged",
    "archived",
    "orphaned",
    "invalid",
    "held",
    "failed",
)
PRICE_RESULTS = ("created", "archived", "unchanged")
_NAME_SHOWN = 60  # characters of a row's name in a table (its JSON keeps it whole)
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
    # Retried calls to the catalog, the state and the throttle's store in the batches' latest
    # runs, and the longest a call waited for one of them.
    catalog_retries: int = 0
    catalog_longest_outage_s: float = 0.0
    failures: list[dict] = field(default_factory=list)
    invalid: list[dict] = field(default_factory=list)
    held: list[dict] = field(default_factory=list)  # rows not written: see their reasons
    removed: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    # With a prices model: the products' prices created, archived and found as wanted.
    prices: dict[str, int] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)  # the runs of the batches' latest records
    # How long those runs ran, overlaps counted once (`running_seconds`); None: not known.
    run_seconds: float | None = None

    @property
    def rate(self) -> float:
        """Products brought in sync per second of Stripe work."""
        idle = sum(self.counts.get(name, 0) for name in ("unchanged", "invalid", "held"))
        worked = self.products - idle
        return worked / self.stripe_seconds if self.stripe_seconds else 0.0

    @property
    def products_per_s(self) -> float | None:
        """Products of the report per second its runs ran: a run goes through every product of
        its batches, unchanged ones too."""
        return self.products / self.run_seconds if self.run_seconds else None

    @property
    def stripe_requests_per_product(self) -> float | None:
        """Stripe requests per product of the report (0 when nothing needed Stripe)."""
        return self.stripe_requests / self.products if self.products else None

    def with_run_spans(self, spans: Iterable[tuple[float, float]]) -> Report:
        """This report with `run_seconds` from the (start, end) times of its runs; None unless
        every run has its span (one still going, or deleted, would make the rate a guess)."""
        spans = list(spans)
        timed = len(spans) == len(self.run_ids)
        return replace(self, run_seconds=running_seconds(spans) if timed else None)

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "rate_per_s": round(self.rate, 2),
            "products_per_s": _rounded(self.products_per_s),
            "stripe_requests_per_product": _rounded(self.stripe_requests_per_product),
        }

    def to_markdown(self, row_limit: int = 50) -> str:
        per_product = (
            f" ({self.stripe_requests_per_product:.2f} per product)"
            if self.stripe_requests_per_product is not None
            else ""
        )
        lines = [
            "# Migration report",
            "",
            (
                f"Stripe mode: **{self.mode}**; {counted(self.products, 'product')} in "
                f"{counted(self.batches, 'batch')}."
            ),
            "",
            "| " + " | ".join(RESULTS) + " |",
            "|" + " ---: |" * len(RESULTS),
            "| " + " | ".join(str(self.counts.get(name, 0)) for name in RESULTS) + " |",
            "",
            (
                f"Stripe requests: {self.stripe_requests}{per_product}; "
                f"Stripe time {self.stripe_seconds:.1f} s; "
                f"rate {self.rate:.1f} products/s."
            ),
        ]
        if self.products_per_s is not None:
            lines += [
                "",
                (
                    f"Runs: {len(self.run_ids)}, {self.run_seconds:.1f} s of running time; "
                    f"{self.products_per_s:.1f} products/s."
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
                    "Databases (catalog, state, throttle): "
                    f"{counted(self.catalog_retries, 'call')} retried; the longest outage "
                    f"{self.catalog_longest_outage_s:.1f} s."
                ),
            ]
        # Rows still in the catalog are listed with their names; a deleted row's is gone.
        sections = (
            ("Failed", self.failures, ("cms_id", "name", "batch", "error")),
            ("Invalid (quarantined)", self.invalid, ("cms_id", "name", "batch", "error")),
            ("Held (nothing written)", self.held, ("cms_id", "name", "batch", "error")),
            ("Deleted from the catalog", self.removed, ("cms_id", "batch", "error")),
            ("Warnings", self.warnings, ("cms_id", "batch", "error")),
        )
        for title, rows, columns in sections:
            if rows:
                lines += [
                    "",
                    f"## {title} ({len(rows)})",
                    "",
                    "| " + " | ".join(_HEADINGS[column] for column in columns) + " |",
                    "|" + " --- |" * len(columns),
                ]
                lines += [
                    "| " + " | ".join(_cell(column, r[column]) for column in columns) + " |"
                    for r in rows[:row_limit]
                ]
                if len(rows) > row_limit:
                    lines.append(
                        f"\n… and {counted(len(rows) - row_limit, 'more row')} (see the JSON "
                        "report)."
                    )
        return "\n".join(lines) + "\n"


_HEADINGS = {"cms_id": "catalog id", "name": "name", "batch": "batch", "error": "reason"}


def _cell(column: str, value: object) -> str:
    return name_cell(value) if column == "name" else table_cell(value)


def name_cell(name: object) -> str:
    """A row's name as a table cell: a long one shortened, none empty."""
    text = "" if name is None else str(name)
    return table_cell(text if len(text) <= _NAME_SHOWN else text[: _NAME_SHOWN - 1] + "…")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def running_seconds(spans: Iterable[tuple[float, float]]) -> float | None:
    """How long the (start, end) spans of some runs cover, overlaps counted once: runs in
    parallel count their wall-clock time, and the gap between two migrations none. None: no
    span."""
    ordered = sorted(spans)
    if not ordered:
        return None
    covered, reached = 0.0, ordered[0][0]
    for start, end in ordered:
        covered += max(end - max(start, reached), 0.0)
        reached = max(reached, end)
    return covered


def table_cell(value: object) -> str:
    """A value as a Markdown table cell: a pipe or a line break can't break the table."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def build_report(mode: str, batch_records: list[dict]) -> Report:
    """A report from each batch's final ledger record (`run_id`, `outcomes`, `requests`,
    `seconds`)."""
    counts: Counter[str] = Counter()
    prices: Counter[str] = Counter()
    failures, invalid, held, removed = [], [], [], []
    for record in batch_records:
        names = record.get("names", {})  # not in the records of older versions
        for outcome in record["outcomes"]:
            counts[outcome["result"]] += 1
            for name in PRICE_RESULTS:
                prices[name] += outcome.get(f"prices_{name}", 0)
            row = {"cms_id": outcome["cms_id"], "batch": record["batch"], "error": outcome["error"]}
            if outcome["result"] == "failed":
                failures.append({**row, "name": names.get(outcome["cms_id"])})
            elif outcome["result"] == "invalid":
                invalid.append({**row, "name": names.get(outcome["cms_id"])})
            elif outcome["result"] == "held":
                held.append({**row, "name": names.get(outcome["cms_id"])})
            elif outcome["result"] in _REMOVED:
                removed.append({**row, "error": _REMOVED[outcome["result"]]})
    return Report(
        mode=mode,
        batches=len(batch_records),
        products=sum(counts.values()),
        counts={name: counts.get(name, 0) for name in RESULTS},
        stripe_requests=sum(record["requests"] for record in batch_records),
        stripe_seconds=sum(record["seconds"] for record in batch_records),
        # A run's retries are in each of its batches' records: counted once per run.
        catalog_retries=sum(
            {r["run_id"]: r.get("catalog_retries", 0) for r in batch_records}.values()
        ),
        catalog_longest_outage_s=max(
            (record.get("catalog_longest_outage_s", 0.0) for record in batch_records), default=0.0
        ),
        failures=failures,
        invalid=invalid,
        held=held,
        removed=removed,
        warnings=[
            {"cms_id": w["cms_id"], "batch": record["batch"], "error": w["warning"]}
            for record in batch_records
            for w in record.get("warnings", [])
        ],
        prices={name: prices[name] for name in PRICE_RESULTS},
        run_ids=sorted({record["run_id"] for record in batch_records}),
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
