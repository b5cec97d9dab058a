"""The pages' languages: catalogs (Babel), the reader's choice, and money and dates in it.

The catalogs are the .po files under locale/, compiled in memory when the app starts (no .mo
to build or commit; docs/web.md has the pybabel commands that keep them up to date). Money is
integer fen and is only formatted here, never computed.
"""

from __future__ import annotations

import gettext as gettext_module
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LANGS = ("zh_CN", "en")  # the first is the default: the city's own language
LANG_DEFAULT = LANGS[0]
LANG_NAMES = {"zh_CN": "中文", "en": "English"}
LANG_COOKIE = "oc_lang"
ACCEPT_LANGUAGE_ITEMS_MAX = 20  # a header longer than this is read up to here
CURRENCY = "CNY"


def N_(message: str) -> str:  # gettext's own name for "mark now, translate later"
    """Marks a message for the catalogs; the page translates it when it shows it."""
    return message


@dataclass(frozen=True, slots=True)
class Language:
    """One of LANGS: its Babel locale, its catalog and the name HTML gives it."""

    code: str
    locale: Locale
    translations: gettext_module.NullTranslations

    @property
    def name(self) -> str:
        """The language's name in itself, for the switch."""
        return LANG_NAMES[self.code]

    @property
    def html_lang(self) -> str:
        return self.code.replace("_", "-")

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def yuan(self, amount_fen: int) -> str:
        """Integer fen as yuan in this locale (¥12.34, CN¥12.34): formatted, never computed."""
        return format_currency(Decimal(amount_fen).scaleb(-2), CURRENCY, locale=self.locale)

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def date(self, value: datetime, zone: tzinfo) -> str:
        return format_date(value.astimezone(zone), format="medium", locale=self.locale)

    def calendar_date(self, value: date) -> str:
        return format_date(value, format="medium", locale=self.locale)

    def time(self, value: datetime, zone: tzinfo) -> str:
        return format_time(value.astimezone(zone), format="short", locale=self.locale)

    def datetime(self, value: datetime, zone: tzinfo) -> str:
        return format_datetime(value.astimezone(zone), format="medium", locale=self.locale)


def _catalog(code: str) -> gettext_module.NullTranslations:
    """The .po file of `code`, compiled in memory (fuzzy entries are left out, as pybabel
    compile does)."""
    po_path = LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=code, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(fp=compiled, domain=DOMAIN)


@lru_cache(maxsize=len(LANGS))
def language(code: str) -> Language:
    if code not in LANGS:
        code = LANG_DEFAULT
    return Language(code, Locale.parse(code), _catalog(code))


def load_catalogs() -> None:
    """Compile every catalog now (at startup): a broken .po fails the start, not a page."""
    for code in LANGS:
        language(code)


def _accepted(header: str) -> list[str]:
    """The languages of an Accept-Language header, most wanted first (RFC 9110 §12.5.4)."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:ACCEPT_LANGUAGE_ITEMS_MAX]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(cookie: str | None, accept_language: str | None) -> Language:
    """The reader's language: the one they chose (cookie), else their browser's, else zh_CN."""
    if cookie in LANGS:
        return language(cookie)
    wanted = _accepted(accept_language or "")
    chosen = Locale.negotiate(wanted, list(LANGS), sep="-") if wanted else None
    if chosen is None and wanted:
        # "zh-Hans", "zh-TW", "en-GB": the language alone decides when no tag matches whole
        chosen = Locale.negotiate([tag.split("-")[0] for tag in wanted], ["zh", "en"], sep="-")
    if chosen is not None and str(chosen).startswith("en"):
        return language("en")
    if chosen is not None:
        return language("zh_CN")
    return language(LANG_DEFAULT)
