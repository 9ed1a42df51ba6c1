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
    assert report.counts == {"created": 1, "updated": 0, "unchanged": 1, "invalid": 1, "failed": 1}
    assert (report.products, report.stripe_requests, report.stripe_seconds) == (4, 3, 3.0)
    assert report.failures == [{"cms_id": "2", "batch": "b1", "error": "boom"}]
    markdown = report.to_markdown()
    assert "| 1 | 0 | 1 | 1 | 1 |" in markdown
    assert "name_missing: x \\| y" in markdown  # a pipe in a reason can't break the table
    assert report.to_json()["rate_per_s"] == round(2 / 3.0, 2)
