from dataclasses import replace

from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.identity import DesiredProduct
from stripe_sync.core.plan_output import PlanSummary
from stripe_sync.core.planner import CHANGES, SyncState, plan_batch

HAT = DesiredProduct("42", "Hat", None, (), True, "eur", 1250)
SYNCED = SyncState("cms_42", "price_1", "synced", HAT.sync_hash)


def renamed_and_invalid_batch():
    return plan_batch(
        [
            ("42", replace(HAT, name="Cap"), (), SYNCED),
            ("43", None, ("price_missing",), SyncState()),
        ],
        {"42": Checkpoint.of(HAT, "price_1")},
    )


def test_the_counts_name_every_change_once_zeros_included():
    summary = PlanSummary()
    summary.add("b1", renamed_and_invalid_batch())
    assert list(summary.changes) == list(CHANGES)
    assert (summary.changes["update"], summary.changes["invalid"]) == (1, 1)
    assert sum(summary.changes.values()) == summary.products == 2


def test_the_markdown_shows_the_counts_and_the_diff_of_the_sample():
    summary = PlanSummary(sample=1)
    summary.add("b1", renamed_and_invalid_batch())
    markdown = summary.to_markdown()
    assert "# Plan: 2 products in 1 batch" in markdown
    assert "## Changes (first 1 of 2)" in markdown
    assert "- **42**: update\n  - name: 'Hat' -> 'Cap'" in markdown
    assert "43" not in markdown  # beyond the sample


def test_the_json_lists_every_row_only_when_asked():
    assert "actions" not in PlanSummary().to_json()
    summary = PlanSummary(every_row=True)
    summary.add("b1", renamed_and_invalid_batch())
    assert summary.to_json()["actions"] == [
        {
            "batch": "b1",
            "cms_id": "42",
            "stripe_product_id": "cms_42",
            "change": "update",
            "fields": ["name"],
            "diff": ["name: 'Hat' -> 'Cap'"],
        },
        {
            "batch": "b1",
            "cms_id": "43",
            "stripe_product_id": None,
            "change": "invalid",
            "fields": [],
            "diff": ["price_missing"],
        },
    ]
