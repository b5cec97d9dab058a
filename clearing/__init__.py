"""The back office: HTTP API, registry, ingestion, clearing, settlement, the `onecard` command.

It is the only package that may import all the others; none of them imports it.
"""
