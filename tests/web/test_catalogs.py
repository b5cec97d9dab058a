"""Every string of the pages is in both catalogs (zh_CN and en), translated, with the same
placeholders, and the catalogs compile: a page never shows an untranslated English string to
a Chinese reader because someone forgot `pybabel update` (docs/web.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import clearing.web
from clearing.web.i18n import LANGS, LOCALE_DIR, language, negotiate

WEB_DIR = Path(clearing.web.__file__).parent
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def _page_strings() -> set[str]:
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB_DIR), METHODS, options_map=OPTIONS, keywords=KEYWORDS
    ):
        found.add(message if isinstance(message, str) else message[0])
    return {m for m in found if m}


@pytest.mark.parametrize("code", LANGS)
def test_every_page_string_is_translated_with_its_placeholders(code: str) -> None:
    strings = _page_strings()
    assert len(strings) > 30  # the extraction found the pages' strings
    with (LOCALE_DIR / code / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=code)
    translated = {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}
    missing = sorted(strings - translated.keys())
    assert missing == [], f"not in the {code} catalog (docs/web.md: pybabel extract/update)"
    for msgid in strings:
        wanted = sorted(PLACEHOLDER.findall(msgid))
        assert sorted(PLACEHOLDER.findall(str(translated[msgid]))) == wanted, msgid


def test_the_chinese_catalog_translates_and_money_is_yuan_in_each_locale() -> None:
    zh, en = language("zh_CN"), language("en")
    assert zh.gettext("Sign in") == "登录"
    assert en.gettext("Sign in") == "Sign in"
    assert zh.yuan(123456) == "¥1,234.56"
    assert en.yuan(123456) == "CN¥1,234.56"
    assert zh.yuan(5) == "¥0.05"


@pytest.mark.parametrize(
    ("cookie", "header", "chosen"),
    [
        (None, None, "zh_CN"),  # nothing said: the city's language
        (None, "fr-FR,fr;q=0.9", "zh_CN"),
        (None, "en-US,en;q=0.9,zh;q=0.5", "en"),
        (None, "zh;q=0.4,en-GB;q=0.8", "en"),  # quality, not order
        (None, "zh-TW,zh;q=0.9", "zh_CN"),
        (None, "de, en;q=0.1", "en"),
        ("en", "zh-CN", "en"),  # the reader's own choice wins
        ("xx", "en", "en"),  # a cookie of no language of ours is ignored
    ],
)
def test_the_readers_language(cookie: str | None, header: str | None, chosen: str) -> None:
    assert negotiate(cookie, header).code == chosen
