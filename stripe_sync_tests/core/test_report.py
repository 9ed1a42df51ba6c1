import pytest

from stripe_sync.core.report import build_report, running_seconds


def record(batch, *outcomes, requests=0, seconds=1.0, run="run-1"):
    return {
        "run_id": run,
        "batch": batch,
        "requests": requests,
        "seconds": seconds,
        "outcomes": list(outcomes),
    }


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
            record(
                "b3",
                outcome("5", "adopted"),
                outcome("6", "held", "adopt_ambiguous: prod_A and prod_B all have …"),
            ),
        ],
    )
    assert report.counts == {
        "created": 1,
        "adopted": 1,
        "updated": 0,
        "unchanged": 1,
        "archived": 0,
        "orphaned": 0,
        "invalid": 1,
        "held": 1,
        "failed": 1,
    }
    assert (report.products, report.stripe_requests, report.stripe_seconds) == (6, 3, 4.0)
    assert report.failures == [{"cms_id": "2", "batch": "b1", "error": "boom", "name": None}]
    assert report.held == [
        {
            "cms_id": "6",
            "batch": "b3",
            "error": "adopt_ambiguous: prod_A and prod_B all have …",
            "name": None,
        }
    ]
    markdown = report.to_markdown()
    assert "| 1 | 1 | 0 | 1 | 0 | 0 | 1 | 1 | 1 |" in markdown
    assert "## Held (nothing written) (1)" in markdown
    assert "name_missing: x \\| y" in markdown  # a pipe in a reason can't break the table
    assert report.to_json()["rate_per_s"] == round(3 / 4.0, 2)


def test_quarantined_and_failed_rows_are_listed_with_their_names():
    quarantined = record("b1", outcome("7", "invalid", "price_missing: no price"))
    failed = record("b2", outcome("8", "failed", "boom"))
    quarantined["names"], failed["names"] = {"7": "Wool | hat"}, {"8": "Tote " + "x" * 80}

    markdown = build_report("test", [quarantined, failed]).to_markdown()

    assert "| catalog id | name | batch | reason |" in markdown
    assert "| 7 | Wool \\| hat | b1 | price_missing: no price |" in markdown
    assert f"| 8 | Tote {'x' * 54}… | b2 | boom |" in markdown  # a long name shortened


def test_the_report_of_a_batch_recorded_without_names_lists_its_rows_without():
    markdown = build_report("test", [record("b1", outcome("7", "invalid", "bad"))]).to_markdown()

    assert "| 7 |  | b1 | bad |" in markdown


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


@pytest.mark.parametrize(
    ("spans", "seconds"),
    [
        ([(100.0, 110.0)], 10.0),
        ([(100.0, 110.0), (110.0, 125.0)], 25.0),  # one run after the other
        ([(100.0, 110.0), (105.0, 120.0)], 20.0),  # in parallel: wall-clock time
        ([(100.0, 130.0), (105.0, 110.0)], 30.0),  # one inside the other
        ([(200.0, 205.0), (100.0, 110.0)], 15.0),  # the gap between two migrations: none
        ([], None),
    ],
)
def test_the_runs_running_time_counts_overlaps_once_and_gaps_not_at_all(spans, seconds):
    assert running_seconds(spans) == seconds


def test_products_per_second_and_requests_per_product_count_every_product_of_the_runs():
    report = build_report(
        "test",
        [
            record("b1", *(outcome(str(n), "created") for n in range(6)), requests=6, run="r1"),
            record("b2", *(outcome(str(n), "unchanged") for n in range(6, 10)), run="r2"),
            record("b3", outcome("10", "unchanged"), run="r2"),
        ],
    ).with_run_spans([(100.0, 102.0), (102.0, 104.5)])

    assert report.run_ids == ["r1", "r2"]
    assert (report.run_seconds, report.products_per_s, report.stripe_requests_per_product) == (
        4.5,
        11 / 4.5,
        6 / 11,
    )
    assert {
        name: report.to_json()[name]
        for name in ("run_seconds", "products_per_s", "stripe_requests_per_product")
    } == {"run_seconds": 4.5, "products_per_s": 2.44, "stripe_requests_per_product": 0.55}
    markdown = report.to_markdown()
    assert "Stripe requests: 6 (0.55 per product);" in markdown
    assert "Runs: 2, 4.5 s of running time; 2.4 products/s." in markdown


@pytest.mark.parametrize("spans", [None, []], ids=["not looked up", "a run without its span"])
def test_without_every_runs_time_or_any_product_the_report_claims_no_rate(spans):
    untimed = build_report("test", [record("b1", outcome("1", "created"), requests=1, run="r1")])
    if spans is not None:
        untimed = untimed.with_run_spans(spans)
    empty = build_report("test", []).with_run_spans([])

    assert (untimed.run_seconds, untimed.products_per_s, untimed.stripe_requests_per_product) == (
        None,
        None,
        1.0,
    )
    assert "Runs:" not in untimed.to_markdown()
    assert (empty.run_seconds, empty.products_per_s, empty.stripe_requests_per_product) == (
        None,
        None,
        None,
    )
    assert "per product" not in empty.to_markdown()
    assert empty.to_json()["stripe_requests_per_product"] is None


def test_a_runs_database_retries_are_counted_once_however_many_batches_it_had():
    retried = {"catalog_retries": 3, "catalog_longest_outage_s": 1.5}
    records = [
        {**record("b1", run="r1"), **retried},
        {**record("b2", run="r1"), **retried},
        {**record("b3", run="r2"), "catalog_retries": 2, "catalog_longest_outage_s": 0.5},
    ]

    report = build_report("test", records)

    assert (report.catalog_retries, report.catalog_longest_outage_s) == (5, 1.5)
    assert (
        "Databases (catalog, state, throttle): 5 calls retried; the longest outage 1.5 s."
        in report.to_markdown()
    )
