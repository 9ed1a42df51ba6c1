"""Catalog rows as a DataFrame, the shape validation takes."""

from __future__ import annotations

import pandas as pd

from stripe_sync.catalog.base import SOURCE_COLUMNS, WRITE_BACK_COLUMNS


def catalog_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows read from a catalog (each with its `batch`), values untouched (dtype object)."""
    columns = ["batch", *SOURCE_COLUMNS, *WRITE_BACK_COLUMNS]
    mapped = [key for key in (rows[0] if rows else {}) if key not in columns]  # metadata.<column>
    return pd.DataFrame(rows, columns=[*columns, *mapped], dtype=object)
