"""Counts in sentences."""

import pytest

from stripe_sync.core.wording import counted


@pytest.mark.parametrize(
    ("count", "noun", "said"),
    [
        (1, "batch", "1 batch"),
        (2, "batch", "2 batches"),
        (0, "batch", "0 batches"),
        (1, "mismatch", "1 mismatch"),
        (3, "mismatch", "3 mismatches"),
        (1, "row", "1 row"),
        (5, "synced row", "5 synced rows"),
        (2, "entry", "2 entries"),
        (2, "key", "2 keys"),
    ],
)
def test_a_count_takes_the_singular_for_one_and_the_plural_otherwise(count, noun, said):
    assert counted(count, noun) == said
