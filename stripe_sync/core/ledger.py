"""The outcome ledger: what the latest run of each Stripe step did to each row of a batch.

One record per step (`stripe_products`, `stripe_prices`) and batch, in the state store,
written before the step succeeds or fails, so a failed batch's finished work still reaches
the prices step of the next run and the report.
"""

from __future__ import annotations

from typing import Protocol

PRODUCTS, PRICES = "stripe_products", "stripe_prices"


class LedgerStore(Protocol):
    def save_outcomes(self, step: str, batch: str, record: dict) -> None: ...
    def outcomes(self, step: str, batch: str) -> dict | None: ...


def outcomes_of_run(store: LedgerStore, step: str, batch: str, run_id: str) -> dict | None:
    """The step's record of the batch if `run_id` made it."""
    record = store.outcomes(step, batch)
    return record if record is not None and record["run_id"] == run_id else None


def final_record(store: LedgerStore, batch: str) -> dict | None:
    """The batch's latest result: the prices step's record when it ran in the products step's
    run (its time added), else the products step's."""
    products = store.outcomes(PRODUCTS, batch)
    prices = store.outcomes(PRICES, batch)
    if products is None:
        return prices
    if prices is not None and prices["run_id"] == products["run_id"]:
        return {**prices, "seconds": prices["seconds"] + products["seconds"]}
    return products
