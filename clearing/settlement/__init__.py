"""Settlement: business days, commission, payouts, settlement files (CSV, pain.001), statements.

Public API: `clearing.settlement.service.settle_day`, `load_settlement`, `write_files`,
`operator_statement`, `subsidy_report`; `clearing.settlement.tasks.settle` (settle and write
the files) and the Celery task `clearing.settle_day`; every query in `repository`; pure parts
in `days`, `fees`, `payout`, `files`.
"""
