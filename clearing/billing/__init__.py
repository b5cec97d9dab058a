"""Bills: water, power and heating bills looked up at the biller, paid (through Stripe or at a
counter by card), posted once to the biller's payable, confirmed to the biller with retries,
and kept as receipts. A workflow: it reaches the registry, ingest and the ledger."""
