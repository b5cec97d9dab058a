"""The clearing engine: staged tap records in, ledger transfers and quarantine out.

Public API: `clearing.engine.service.ClearingEngine` (`clear_pending`), `open_engine(url,
key_store)`, `EngineConfig`; the pure decision `clearing.engine.decide.decide`; reasons in
`clearing.engine.reasons.QuarantineReason`; Celery task `clearing.engine.tasks.clear_staged`.
"""
