from stripe_sync.core.report import build_report


def record(batch, *outcomes, requests=0, seconds=1.0):
    return {"batch": batch, "requests": requests, "seconds": seconds, "outcomes": list(outcomes)}


def outcome(cms_id, result, error=None):
    return {"cms_id": cms_id, "result": result, "error": error}


def test_the_report_counts_results_and_lists_failures_and_invalid_rows():
    report = build_report(
        "test",
        [
            record(
                "b1",
                outcome("1", "created"),
                outcome("2", "failed", "boom"),
                requests=3,
                seconds=2.0,
            ),
            record("b2", outcome("3", "unchanged"), outcome("4", "invalid", "name_missing: x | y")),
        ],
    )
    assert report.counts == {
        "created": 1,
        "updated": 0,
        "unchanged": 1,
        "archived": 0,
        "orphaned": 0,
        "invalid": 1,
        "failed": 1,
    }
    assert (report.products, report.stripe_requests, report.stripe_seconds) == (4, 3, 3.0)
    assert report.failures == [{"cms_id": "2", "batch": "b1", "error": "boom"}]
    markdown = report.to_markdown()
    assert "| 1 | 0 | 1 | 0 | 0 | 1 | 1 |" in markdown
    assert "name_missing: x \\| y" in markdown  # a pipe in a reason can't break the table
    assert report.to_json()["rate_per_s"] == round(2 / 3.0, 2)


def test_rows_deleted_from_the_catalog_are_always_listed_archived_or_not():
    report = build_report(
        "test", [record("b1", outcome("5", "archived"), outcome("6", "orphaned"))]
    )
    assert (report.counts["archived"], report.counts["orphaned"]) == (1, 1)
    assert [(row["cms_id"], row["error"]) for row in report.removed] == [
        ("5", "deleted from the catalog: archived in Stripe"),
        ("6", "deleted from the catalog, still live in Stripe (mirror mode archives it)"),
    ]
    assert "## Deleted from the catalog (2)" in report.to_markdown()
