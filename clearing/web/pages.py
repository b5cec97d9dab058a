"""Rendering a page: the Jinja2 environment, and what every template gets (the reader's
language and its gettext, money and dates in it, the CSRF token, the visitor, links).

Templates only show: they format what a handler gives them and translate the words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse, RedirectResponse, Response

from clearing.settings import Settings
from clearing.web.forms import Message
from clearing.web.guard import csrf_token
from clearing.web.i18n import LANG_COOKIE, LANGS, Language, language, negotiate

TEMPLATE_DIR = Path(__file__).parent / "templates"
PREFIX = "/web"  # where the API's app mounts the web app


def make_environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # {% trans %} and _() look gettext up in the page's context (each page has its language);
    # "newstyle": placeholders are filled (and escaped) by the page's gettext, see _gettext_of
    environment.newstyle_gettext = True  # type: ignore[attr-defined]
    return environment


def reader_language(request: Request) -> Language:
    cached = getattr(request.state, "web_language", None)
    if cached is None:
        cached = negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
        request.state.web_language = cached
    return cached


def _gettext_of(lang: Language) -> Any:
    @pass_context
    def gettext(context: Any, message: str, **values: Any) -> str:
        text = lang.gettext(message)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % values if values else text

    @pass_context
    def ngettext(context: Any, singular: str, plural: str, count: int, **values: Any) -> str:
        text = lang.translations.ngettext(singular, plural, count)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % {"num": count, **values}

    return gettext, ngettext


def say(lang: Language, message: Message | str) -> str:
    """A message (a msgid with its values) in the reader's language."""
    if isinstance(message, str):
        return lang.gettext(message)
    text = lang.gettext(message.msgid)
    if not message.values:
        return text
    # an amount travels as integer fen (a value named *_fen) and is shown in the reader's yuan
    values = {
        name: lang.yuan(value) if name.endswith("_fen") and isinstance(value, int) else value
        for name, value in message.values
    }
    return text % values


def href(request: Request, route: str, **params: Any) -> str:
    """The path of a route of the web app (no host: links never leave this service)."""
    query = params.pop("_query", None)
    # the web app's own router (the API's would need "web:" names), under its mount point
    path = request.scope.get("root_path", "") + request.app.router.url_path_for(route, **params)
    return f"{path}?{urlencode(query)}" if query else path


def safe_next(target: str | None) -> str | None:
    """A path inside the web app to go back to, or None (never another host)."""
    if not target or not target.startswith(PREFIX + "/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 0x20 for c in target):
        return None
    return target


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    lang = reader_language(request)
    settings: Settings = request.app.state.settings
    zone = ZoneInfo(settings.business_time_zone)
    gettext, ngettext = _gettext_of(lang)
    environment: Environment = request.app.state.web_templates
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    page = environment.get_template(template).render(
        request=request,
        lang=lang,
        langs=[language(code) for code in LANGS],
        gettext=gettext,
        ngettext=ngettext,
        say=lambda message: say(lang, message),
        yuan=lang.yuan,
        number=lang.number,
        date=lambda value: lang.date(value, zone),
        date_only=lang.calendar_date,
        time=lambda value: lang.time(value, zone),
        datetime=lambda value: lang.datetime(value, zone),
        csrf_token=csrf_token(request),
        visitor=getattr(request.state, "web_visitor", None),
        href=lambda route, **params: href(request, route, **params),
        static=lambda name: href(request, "static", path=name),
        here=here,
        **context,
    )
    return HTMLResponse(page, status_code=status_code)


def redirect(request: Request, route: str, **params: Any) -> RedirectResponse:
    """After a POST: 303 to a page (the browser GETs it; reloading never posts again)."""
    return RedirectResponse(href(request, route, **params), status_code=303)


def redirect_to(path: str) -> Response:
    return RedirectResponse(path, status_code=303)
