"""Pandera models: what the catalog must deliver, and what the Stripe assets may rely on."""

import pandera.pandas as pa
from pandera.typing import Series

from stripe_sync.core.money import SUPPORTED_CURRENCIES


class CatalogRows(pa.DataFrameModel):
    """One batch of the catalog as read through its field mapping: the pipeline's fields, values
    still raw."""

    batch: Series[str] = pa.Field(description="The batch (partition key) the row belongs to.")
    id: Series[str] = pa.Field(nullable=True, description="Catalog primary key, as text.")
    name: Series[object] = pa.Field(nullable=True, description="Product name (CMS).")
    description: Series[object] = pa.Field(nullable=True, description="Product description (CMS).")
    price: Series[object] = pa.Field(
        nullable=True,
        description="Price as the catalog holds it: major units (12.50) or minor (1250), as "
        "catalog.price_unit says.",
    )
    currency: Series[object] = pa.Field(
        nullable=True, description="ISO code; empty means the default."
    )
    images: Series[object] = pa.Field(
        nullable=True, description="Image URLs: an array or a JSON array."
    )
    active: Series[object] = pa.Field(
        nullable=True, description="Whether it is sold; empty means true."
    )
    updated_at: Series[object] = pa.Field(nullable=True, description="Last change in the CMS.")
    stripe_product_id: Series[object] = pa.Field(
        nullable=True, description="Write-back: Stripe product id."
    )
    stripe_price_id: Series[object] = pa.Field(
        nullable=True, description="Write-back: default price id."
    )
    sync_status: Series[object] = pa.Field(
        nullable=True,
        description="Write-back: empty (pending), synced, failed, invalid or archived.",
    )
    sync_error: Series[object] = pa.Field(
        nullable=True, description="Write-back: why it failed or is invalid."
    )
    synced_at: Series[object] = pa.Field(
        nullable=True, description="Write-back: when it last synced."
    )
    sync_hash: Series[object] = pa.Field(
        nullable=True, description="Write-back: content hash last synced."
    )
    prices: Series[object] | None = pa.Field(
        nullable=False,
        description="With a prices model: the product's price rows (id, product_id, amount, "
        "currency, interval, interval_count, active, default, nickname), values still raw.",
    )
    held_stripe_product_id: Series[object] | None = pa.Field(
        alias="held__stripe_product_id",
        nullable=True,
        description="The Stripe product id another tool wrote into a column of the catalog's "
        "own (catalog.columns.stripe_product_id): read only.",
    )
    mapped_metadata: Series[object] | None = pa.Field(
        alias=r"^metadata\..+$",
        regex=True,
        nullable=True,
        description="Catalog columns mapped to metadata.",
    )

    class Config:
        strict = True


class ValidatedProducts(pa.DataFrameModel):
    """Every row of the batch: valid rows complete and Stripe-ready, invalid ones with reasons."""

    batch: Series[str] = pa.Field(description="The batch (partition key) the row belongs to.")
    cms_id: Series[str] = pa.Field(description="Catalog id, exactly as in the catalog.")
    reasons: Series[object] = pa.Field(
        description="Why the row is invalid (`code: message`); empty if valid."
    )
    warnings: Series[object] = pa.Field(description="What was fixed on the way (`code: message`).")
    name: Series[object] = pa.Field(nullable=True, description="Cleaned name as sent to Stripe.")
    description: Series[object] = pa.Field(
        nullable=True, description="Cleaned description, or empty."
    )
    images: Series[object] = pa.Field(description="Absolute https image URLs (at most 8).")
    active: Series[object] = pa.Field(description="Whether the Stripe product is active.")
    currency: Series[object] = pa.Field(description="Lowercase ISO currency code.")
    unit_amount: Series[object] = pa.Field(
        nullable=True, description="Price in the currency's minor unit."
    )
    metadata: Series[object] = pa.Field(description="Mapped catalog columns as (key, value) pairs.")
    prices: Series[object] = pa.Field(
        description="With a prices model: every valid active price (`DesiredPrice`), the "
        "default first; empty otherwise."
    )
    held_prices: Series[object] = pa.Field(
        description="Ids of the product's quarantined price rows: their Stripe prices are left "
        "alone."
    )
    price_reasons: Series[object] = pa.Field(
        description="Why each quarantined price row is invalid (`price <id>: code: message`)."
    )
    stripe_product_id: Series[object] = pa.Field(
        nullable=True, description="Last synced Stripe product id."
    )
    stripe_price_id: Series[object] = pa.Field(
        nullable=True, description="Last synced default price id."
    )
    sync_status: Series[object] = pa.Field(nullable=True, description="Last sync status.")
    sync_error: Series[object] = pa.Field(nullable=True, description="Last sync error.")
    synced_at: Series[object] = pa.Field(nullable=True, description="When it last synced.")
    sync_hash: Series[object] = pa.Field(nullable=True, description="Content hash last synced.")
    held_product_id: Series[object] = pa.Field(
        nullable=True,
        description="The Stripe product id another tool wrote into a column of the catalog's "
        "own (catalog.columns.stripe_product_id): a product to adopt.",
    )

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

    @pa.dataframe_check
    def valid_rows_have_unique_ids(cls, df):
        valid = df[df["reasons"].map(len) == 0]
        return not valid["cms_id"].duplicated().any()
