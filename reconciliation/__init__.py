"""Nightly reconciliation: a run per business day executes the checks (reconciliation/checks:
ledger, terminals, cards, and the matchers of outside statements), records each one's auto-match
rate, and keeps the breaks finance staff work through (status, assignee, history), with a report.

Reads what the ledger (ledger.reader) and clearing stored plus outside statements; writes only its
own tables (recon_*) and never moves money. docs/reconciliation.md says how it works.
"""
