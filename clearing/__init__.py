"""The back office: HTTP API, registry, ingestion, clearing, settlement, the `onecard` command.

It is the only package that may import all the others; none of them imports it. Inside, layers
(a `layers` import contract): entry points (cli; api, celery_app), workflows (settlement,
quarantine, cards; engine), domains (clinic, ingest, lists; registry; auth), ground (http,
settings, db, books, calendar, errors).
"""
