"""The web apps people use: the resident's cards and bills, and (beside it) the finance console.

Server-rendered pages (Jinja2) mounted in the API's service under /web, calling the same
services as the API. No business rule lives in a template or a page handler; pages never load
anything from another host (docs/web.md).
"""
