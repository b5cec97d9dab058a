"""Nightly reconciliation: matching, breaks and reports.

Reads what the ledger and clearing stored plus outside statements; writes only its own tables and never moves money.
"""
