"""The outcome ledger: what the latest run of each Stripe step did to each row of a batch.

One JSON record per step (`stripe_products`, `stripe_prices`) and batch, written before the
step succeeds or fails, so a failed batch's finished work still reaches the prices step of
the next run and the report.
"""

from __future__ import annotations

from pathlib import Path

from stripe_sync.core.jsonfiles import read_json, write_json

PRODUCTS, PRICES = "stripe_products", "stripe_prices"


class OutcomeLedger:
    def __init__(self, base_dir: str | Path):
        self.base_dir = Path(base_dir)

    def save(self, step: str, batch: str, record: dict) -> None:
        write_json(self._path(step, batch), record)

    def load(self, step: str, batch: str) -> dict | None:
        return read_json(self._path(step, batch))

    def of_run(self, step: str, batch: str, run_id: str) -> dict | None:
        """The step's record of the batch if `run_id` made it."""
        record = self.load(step, batch)
        return record if record is not None and record["run_id"] == run_id else None

    def final_record(self, batch: str) -> dict | None:
        """The batch's latest result: the prices step's record when it ran in the products
        step's run (its time added), else the products step's."""
        products = self.load(PRODUCTS, batch)
        prices = self.load(PRICES, batch)
        if products is None:
            return prices
        if prices is not None and prices["run_id"] == products["run_id"]:
            return {**prices, "seconds": prices["seconds"] + products["seconds"]}
        return products

    def _path(self, step: str, batch: str) -> Path:
        return self.base_dir / step / f"{batch}.json"
