"""The clearing engine: staged tap records in, ledger transfers and quarantine out.

Public API: `clearing.engine.service.ClearingEngine` (`clear_pending`), `open_engine(url,
key_store)`, `EngineConfig`; the pure decision `clearing.engine.decide.decide`; reasons in
`clearing.engine.reasons.QuarantineReason`; Celery task `clearing.engine.tasks.clear_staged`.

One module per idea:
- service.py: runs (the clearing lock, chunks, read-ahead, retries, bisection of a failing chunk)
- runs.py: what a run reports and how it fails (counters, listener, errors)
- uow.py: the unit of work, the engine's only way into other domains (registry, lists, clinic,
  settlement days, books), real on SQL or fake in tests
- facts.py: one chunk's decision context and each record's decision
- decide.py, reasons.py: the pure decision and its reasons
- posting.py: ledger transfers of a chunk; recording.py: the rows a chunk writes (both built
  before the chunk's first ledger write, so the ledger's locks are held only to post and write)
- rows.py: the rows it writes, one field per column; models.py: its tables
- repository.py: every query of the engine; pg.py: their PostgreSQL hot path (asyncpg)

Settlement and the quarantine build on the engine; the engine imports neither (pyproject's
import contracts).
"""
