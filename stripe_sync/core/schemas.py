"""Pandera models: what the catalog must deliver, and what the Stripe assets may rely on."""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series

from stripe_sync.core.money import SUPPORTED_CURRENCIES


class CatalogRows(pa.DataFrameModel):
    """One batch of the catalog table as read: its columns, values still raw."""

    batch: Series[str] = pa.Field(description="The batch (partition key) the row belongs to.")
    id: Series[str] = pa.Field(description="Catalog primary key, as text.")
    name: Series[object] = pa.Field(nullable=True, description="Product name (CMS).")
    description: Series[object] = pa.Field(nullable=True, description="Product description (CMS).")
    price: Series[object] = pa.Field(
        nullable=True, description="Price in major units, e.g. 12.50 (CMS)."
    )
    currency: Series[object] = pa.Field(
        nullable=True, description="ISO currency code; empty means the default."
    )
    images: Series[object] = pa.Field(
        nullable=True, description="Image URLs: an array or a JSON array."
    )
    active: Series[object] = pa.Field(
        nullable=True, description="Whether the product is sold; empty means true."
    )
    updated_at: Series[object] = pa.Field(nullable=True, description="Last change in the CMS.")
    stripe_product_id: Series[object] = pa.Field(
        nullable=True, description="Write-back: Stripe product id."
    )
    stripe_price_id: Series[object] = pa.Field(
        nullable=True, description="Write-back: Stripe default price id."
    )
    sync_status: Series[object] = pa.Field(
        nullable=True,
        description="Write-back: empty (pending), synced, failed, invalid or archived.",
    )
    sync_error: Series[object] = pa.Field(
        nullable=True, description="Write-back: why the row failed or is invalid."
    )
    synced_at: Series[object] = pa.Field(
        nullable=True, description="Write-back: when the row last synced."
    )
    sync_hash: Series[object] = pa.Field(
        nullable=True, description="Write-back: content hash last synced."
    )

    class Config:
        strict = True
        unique = ["id"]  # noqa: RUF012 - pandera's config attribute


class ValidatedProducts(pa.DataFrameModel):
    """Every row of the batch: valid rows complete and Stripe-ready, invalid ones with reasons."""

    batch: Series[str] = pa.Field(description="The batch (partition key) the row belongs to.")
    cms_id: Series[str] = pa.Field(
        unique=True, description="Catalog id, exactly as in the catalog."
    )
    reasons: Series[object] = pa.Field(description="Why the row is invalid; empty for a valid row.")
    name: Series[object] = pa.Field(nullable=True, description="Trimmed name as sent to Stripe.")
    description: Series[object] = pa.Field(
        nullable=True, description="Trimmed description, or empty."
    )
    images: Series[object] = pa.Field(
        nullable=True, description="Absolute https image URLs (at most 8)."
    )
    active: Series[object] = pa.Field(
        nullable=True, description="Whether the Stripe product is active."
    )
    currency: Series[object] = pa.Field(nullable=True, description="Lowercase ISO currency code.")
    unit_amount: Series[object] = pa.Field(
        nullable=True, description="Price in the currency's minor unit."
    )
    stripe_product_id: Series[object] = pa.Field(
        nullable=True, description="Last synced Stripe product id."
    )
    stripe_price_id: Series[object] = pa.Field(
        nullable=True, description="Last synced default price id."
    )
    sync_status: Series[object] = pa.Field(nullable=True, description="Last sync status.")
    sync_error: Series[object] = pa.Field(nullable=True, description="Last sync error.")
    sync_hash: Series[object] = pa.Field(nullable=True, description="Content hash last synced.")

    class Config:
        strict = True

    @pa.dataframe_check
    def valid_rows_are_stripe_ready(cls, df):
        valid = df["reasons"].map(len) == 0
        return ~valid | (
            df["name"].map(lambda v: isinstance(v, str) and bool(v))
            & df["currency"].isin(SUPPORTED_CURRENCIES)
            & df["unit_amount"].map(lambda v: isinstance(v, int) and v >= 0)
            & df["active"].map(lambda v: isinstance(v, bool))
        )
