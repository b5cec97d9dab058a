"""The web app: a FastAPI sub-application the API's app mounts at /web, sharing its state
(database, ledger, settings). Its own middleware (security headers, session cookies, the CSRF
guard) and error pages (HTML in the reader's language, never a traceback or a JSON problem).
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from clearing.errors import ClearingError
from clearing.settings import Settings
from clearing.web import cards, console, console_books, payments, resident
from clearing.web.guard import CsrfGuard, SecurityHeaders
from clearing.web.i18n import N_, load_catalogs
from clearing.web.pages import PREFIX, href, make_environment, redirect_to, render
from clearing.web.session import CookieWriter, PageNotFound, SignInRequired

STATIC_DIR = Path(__file__).parent / "static"
# The groups of pages, each an APIRouter of its module (the console adds its own here).
ROUTERS = (resident.router, cards.router, payments.router, console.router, console_books.router)
log = logging.getLogger("clearing.web")

# The status pages, each with its heading and what to do (msgids).
STATUS_PAGES = {
    403: (
        N_("This form has expired"),
        N_(
            "The page was open too long or came from another site. Go back, reload it and send "
            "it again."
        ),
    ),
    404: (N_("Page not found"), N_("There is nothing here, or nothing you may see.")),
    405: (N_("Page not found"), N_("There is nothing here, or nothing you may see.")),
    413: (N_("Too much was sent"), N_("This form is small: send only what it asks for.")),
    500: (
        N_("Something went wrong"),
        N_("Nothing was changed by this request. Try again in a moment."),
    ),
}


async def status_page(request: Request, status_code: int) -> Response:
    heading, detail = STATUS_PAGES.get(status_code, STATUS_PAGES[500])
    return render(request, "status.html", status_code, heading=heading, detail=detail)


def create_web_app(settings: Settings) -> FastAPI:
    """The web app; `mount_web` shares the API app's state with it."""
    load_catalogs()
    web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    web.state.settings = settings
    web.state.web_templates = make_environment()
    web.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in ROUTERS:
        web.include_router(router)
    # Added innermost first: headers wrap everything, cookies wrap the guard's refusals.
    web.add_middleware(CsrfGuard, refuse=status_page)
    web.add_middleware(CookieWriter, secure=settings.web_cookie_secure)
    web.add_middleware(SecurityHeaders)
    _install_error_pages(web)
    return web


def mount_web(app: FastAPI, settings: Settings) -> FastAPI:
    """Mount the web app on `app` at /web; it sees `app.state` (the lifespan's database, ledger,
    Stripe gateway) as its own."""
    web = create_web_app(settings)
    templates = web.state.web_templates
    web.state = app.state
    web.state.web_templates = templates
    app.mount(PREFIX, web, name="web")
    return web


def _install_error_pages(web: FastAPI) -> None:
    @web.exception_handler(SignInRequired)
    async def _sign_in(request: Request, error: SignInRequired) -> Response:
        if request.method != "GET":  # a form cannot be sent again after signing in
            return redirect_to(href(request, error.signin_route))
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect_to(href(request, error.signin_route, _query={"next": here}))

    @web.exception_handler(PageNotFound)
    async def _not_found(request: Request, error: PageNotFound) -> Response:
        return await status_page(request, 404)

    @web.exception_handler(RequestValidationError)
    async def _bad_path(request: Request, error: RequestValidationError) -> Response:
        # a path or query no page of ours has (a card number of 15 digits, ...)
        return await status_page(request, 404)

    @web.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        return await status_page(
            request, error.status_code if error.status_code in STATUS_PAGES else 500
        )

    @web.exception_handler(ClearingError)
    async def _clearing(request: Request, error: ClearingError) -> Response:
        # a handler meant to catch it: an unexpected one shows no detail, and is logged
        if error.status == 404:
            return await status_page(request, 404)
        log.warning("web page %s: %s %s", request.url.path, error.code, error)
        return await status_page(request, 500)

    @web.exception_handler(Exception)
    async def _crash(request: Request, error: Exception) -> Response:
        log.exception("web page %s failed", request.url.path)
        return await status_page(request, 500)
