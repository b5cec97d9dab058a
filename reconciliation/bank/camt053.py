"""Read an ISO 20022 camt.053 (bank-to-customer statement) file into BankStatements. Pure.

pycamt (`pycamt.parser.Camt053Parser`) parses the document (safely: no entities, no network)
and gives, per entry and transaction detail, the status, booking and value dates, the reversal
flag, the end-to-end id, the parties' names and IBANs, the remittance information. Where it
falls short, the same lxml tree it built is read directly:
- it flattens an entry into one row per TxDtls and overwrites the entry's amount with each
  detail's, so a batch entry's own amount (and whether a detail had an amount at all) is lost:
  amounts, currencies and credit/debit indicators are read from the elements themselves;
- it reads accounts only as IBAN: the statement's account and the counterparties' are also read
  from Othr/Id (Chinese account numbers are no IBANs);
- it has no NtryRef, no entry-level AcctSvcrRef of its own (it takes the first in the entry,
  maybe a detail's), no Btch and no detail-level AcctSvcrRef / PmtInfId / MsgId;
- its balances go through float: OPBD/CLBD are read as exact decimals instead.
A malformed file raises a StatementError (nothing of it is kept); a malformed entry becomes a
RefusedEntry with its reason and the good entries next to it are kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree
from pycamt.parser import Camt053ParseError, Camt053Parser

from reconciliation.bank.statement import (
    CURRENCY,
    DETAILS_PER_ENTRY_MAX,
    ENTRIES_MAX,
    REF_LENGTH_MAX,
    STATEMENT_BYTES_MAX,
    TEXT_LENGTH_MAX,
    BankEntry,
    BankStatement,
    Direction,
    EntryDetail,
    Refusal,
    RefusedEntry,
    StatementMalformed,
    StatementTooLarge,
)

CAMT053_NS_PREFIX = "urn:iso:std:iso:20022:tech:xsd:camt.053."
AMOUNT_FEN_MAX = 10**15  # ten trillion yuan: beyond any entry of one account
_AMOUNT = re.compile(r"^[0-9]{1,18}(\.[0-9]{1,5})?$")  # ISO ActiveOrHistoricCurrencyAndAmount
_INDICATORS = {"CRDT": Direction.CREDIT, "DBIT": Direction.DEBIT}
_BOOKED = ("BOOK", None)  # a v02 Sts without code, or no Sts at all, counts as booked
_NOT_PROVIDED = "NOTPROVIDED"


class _EntryRefused(Exception):
    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Tree:
    """Namespaced child lookups on the document pycamt parsed."""

    def __init__(self, namespace: str) -> None:
        self.ns = namespace

    def path(self, steps: str) -> str:
        return "/".join(f"{{{self.ns}}}{step}" for step in steps.split("/"))

    def find(self, element: Any, steps: str) -> Any:
        return element.find(self.path(steps))

    def text(self, element: Any, steps: str) -> str | None:
        found = self.find(element, steps)
        if found is None or found.text is None:
            return None
        return " ".join(found.text.split()) or None

    def all(self, element: Any, steps: str) -> list[Any]:
        return list(element.iterfind(self.path(steps)))


def _clip(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    return value[:limit] if value else None


def amount_fen(text: str | None) -> int:
    """An ISO amount text to integer fen; ValueError if it is not a positive amount in fen."""
    if text is None or not _AMOUNT.match(text.strip()):
        raise ValueError(f"not an amount: {text!r}")
    try:
        fen = Decimal(text.strip()) * 100
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if fen != fen.to_integral_value():
        raise ValueError(f"{text} has fractions of a fen")
    if not 0 < fen <= AMOUNT_FEN_MAX:
        raise ValueError(f"{text} is not a positive amount up to {AMOUNT_FEN_MAX // 100} yuan")
    return int(fen)


def _day(text: str | None) -> date | None:
    """A Dt or DtTm text to its date (the first ten characters carry it either way)."""
    if text is None:
        return None
    return date.fromisoformat(text.strip()[:10])


def parse_camt053(xml: bytes) -> tuple[BankStatement, ...]:
    """Every Stmt of a camt.053 document; StatementError if the file as a whole is unusable."""
    if len(xml) > STATEMENT_BYTES_MAX:
        raise StatementTooLarge(
            f"the statement file is {len(xml)} bytes; at most {STATEMENT_BYTES_MAX} are read: "
            "ask the bank for one file per day"
        )
    try:
        parser = Camt053Parser(xml)
    except etree.XMLSyntaxError as error:
        raise StatementMalformed(f"not well-formed XML: {error}") from None
    root = parser.tree
    namespace = etree.QName(root).namespace or ""
    if not namespace.startswith(CAMT053_NS_PREFIX) or etree.QName(root).localname != "Document":
        raise StatementMalformed(
            f"not a camt.053 statement (root {root.tag}): expected a Document in "
            f"{CAMT053_NS_PREFIX}001.xx"
        )
    tree = _Tree(namespace)
    message_id = tree.text(root, "BkToCstmrStmt/GrpHdr/MsgId")
    if message_id is None:
        raise StatementMalformed("the statement has no GrpHdr/MsgId")
    try:
        rows = parser.get_transactions()
    except Camt053ParseError:
        raise StatementMalformed("the file holds no statement (no Stmt element)") from None
    statements = root.findall(".//Stmt", parser.namespaces)  # pycamt's own walk, same order
    entry_count = sum(len(s.findall(".//Ntry", parser.namespaces)) for s in statements)
    if entry_count > ENTRIES_MAX:
        raise StatementTooLarge(f"{entry_count} entries in one file; at most {ENTRIES_MAX}")
    created_at = _created_at(tree.text(root, "BkToCstmrStmt/GrpHdr/CreDtTm"))
    result = []
    position = 0
    for element in statements:
        statement, used = _statement(tree, parser, element, rows[position:], message_id)
        result.append(replace(statement, created_at=created_at))
        position += used
    if position != len(rows):  # pycamt walked the entries differently from us: a bug, not data
        raise StatementMalformed(
            f"pycamt read {len(rows)} transactions where the entries hold {position}"
        )
    return tuple(result)


def _created_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise StatementMalformed(f"GrpHdr/CreDtTm {text!r} is not an ISO date-time") from None
    return moment if moment.tzinfo is not None else None  # a local time without zone: unknown


def _statement(
    tree: _Tree, parser: Camt053Parser, element: Any, rows: list[dict[str, Any]], message_id: str
) -> tuple[BankStatement, int]:
    """One Stmt and how many of pycamt's rows (one per entry, or per detail) it used."""
    statement_id = tree.text(element, "Id")
    if statement_id is None:
        raise StatementMalformed("a Stmt has no Id")
    account = tree.text(element, "Acct/Id/IBAN") or tree.text(element, "Acct/Id/Othr/Id")
    if account is None:
        raise StatementMalformed(f"statement {statement_id} names no account (Acct/Id)")
    currency = tree.text(element, "Acct/Ccy") or CURRENCY
    if currency != CURRENCY:
        raise StatementMalformed(
            f"statement {statement_id} is in {currency}; the escrow account is in {CURRENCY}"
        )
    balances = _balances(tree, element, statement_id)
    entries: list[BankEntry] = []
    refused: list[RefusedEntry] = []
    not_booked = 0
    used = 0
    for entry_no, entry in enumerate(element.findall(".//Ntry", parser.namespaces), start=1):
        count = sum(
            len(d.findall(".//TxDtls", parser.namespaces))
            for d in entry.findall(".//NtryDtls", parser.namespaces)
        )
        entry_rows = rows[used : used + max(count, 1)]
        used += max(count, 1)
        if entry_rows and entry_rows[0].get("Status") not in _BOOKED:
            not_booked += 1
            continue
        try:
            entries.append(_entry(tree, entry, entry_rows, statement_id, entry_no))
        except _EntryRefused as why:
            bank_ref = entry_ref(tree, entry, statement_id, entry_no)
            refused.append(RefusedEntry(entry_no, bank_ref, why.reason, why.detail))
    statement = BankStatement(
        message_id=_clip(message_id, REF_LENGTH_MAX) or message_id,
        statement_id=_clip(statement_id, REF_LENGTH_MAX) or statement_id,
        account=account,
        currency=currency,
        created_at=None,
        opening_fen=balances.get("OPBD"),
        closing_fen=balances.get("CLBD"),
        entries=tuple(entries),
        refused=tuple(refused),
        not_booked=not_booked,
    )
    return statement, used


def entry_ref(tree: _Tree, entry: Any, statement_id: str, entry_no: int) -> str:
    """The bank's reference of an entry (AcctSvcrRef: unique for the account), else one made
    unique by the statement id (NtryRef, or the position, is unique within a statement only)."""
    own = _clip(tree.text(entry, "AcctSvcrRef"), REF_LENGTH_MAX)
    if own:
        return own
    within = (_clip(tree.text(entry, "NtryRef"), REF_LENGTH_MAX) or str(entry_no))[:10]
    return f"{statement_id[:24]}#{within}"


def _balances(tree: _Tree, element: Any, statement_id: str) -> dict[str, int]:
    """Opening (OPBD) and closing (CLBD) booked balances, signed (DBIT: overdrawn)."""
    found: dict[str, int] = {}
    for balance in tree.all(element, "Bal"):
        code = tree.text(balance, "Tp/CdOrPrtry/Cd")
        if code not in ("OPBD", "CLBD"):
            continue
        text = tree.text(balance, "Amt")
        try:
            fen = 0 if text is not None and Decimal(text) == 0 else amount_fen(text)
        except (ValueError, InvalidOperation):
            raise StatementMalformed(
                f"statement {statement_id}: balance {code} {text!r} is not an amount"
            ) from None
        found[code] = -fen if tree.text(balance, "CdtDbtInd") == "DBIT" else fen
    return found


def _entry(
    tree: _Tree, entry: Any, rows: list[dict[str, Any]], statement_id: str, entry_no: int
) -> BankEntry:
    """One Ntry, or _EntryRefused naming the first thing wrong with it (Refusal's order)."""
    fen = _amount(tree, entry, "the entry")
    direction = _direction(tree.text(entry, "CdtDbtInd"), "the entry")
    common = rows[0] if rows else {}
    try:
        booked = _day(common.get("BookingDate"))
        valued = _day(common.get("ValueDate"))
    except ValueError as error:
        raise _EntryRefused(Refusal.DATE_INVALID, f"booking or value date: {error}") from None
    booking_date = booked or valued
    value_date = valued or booked
    if booking_date is None or value_date is None:
        raise _EntryRefused(Refusal.DATE_MISSING, "the entry has no booking and no value date")
    details = _details(tree, entry, rows, direction)
    _check_details_add_up(details, fen)
    return BankEntry(
        entry_no=entry_no,
        bank_ref=entry_ref(tree, entry, statement_id, entry_no),
        amount_fen=fen,
        direction=direction,
        booking_date=booking_date,
        value_date=value_date,
        reversal=(common.get("ReversalIndicator") or "").strip().lower() in ("true", "1"),
        batch_ref=_clip(
            tree.text(entry, "NtryDtls/Btch/PmtInfId") or tree.text(entry, "NtryDtls/Btch/MsgId"),
            REF_LENGTH_MAX,
        ),
        info=_clip(common.get("AdditionalEntryInformation"), TEXT_LENGTH_MAX),
        details=details,
    )


def _amount(tree: _Tree, element: Any, what: str, path: str = "Amt") -> int:
    amount = tree.find(element, path)
    if amount is None:
        raise _EntryRefused(Refusal.AMOUNT_MISSING, f"{what} has no amount")
    if amount.get("Ccy") != CURRENCY:
        raise _EntryRefused(
            Refusal.CURRENCY_NOT_CNY, f"{what} is in {amount.get('Ccy')!r}, not {CURRENCY}"
        )
    try:
        return amount_fen(amount.text)
    except ValueError as error:
        raise _EntryRefused(Refusal.AMOUNT_INVALID, f"{what}: {error}") from None


def _direction(indicator: str | None, what: str) -> Direction:
    try:
        return _INDICATORS[indicator or ""]
    except KeyError:
        raise _EntryRefused(
            Refusal.DIRECTION_INVALID, f"{what}: CdtDbtInd {indicator!r} is neither CRDT nor DBIT"
        ) from None


def _details(
    tree: _Tree, entry: Any, rows: list[dict[str, Any]], direction: Direction
) -> tuple[EntryDetail, ...]:
    elements = tree.all(entry, "NtryDtls/TxDtls")
    if len(elements) > DETAILS_PER_ENTRY_MAX:
        raise _EntryRefused(
            Refusal.TOO_MANY_DETAILS,
            f"{len(elements)} transaction details; at most {DETAILS_PER_ENTRY_MAX} per entry",
        )
    if len(elements) != len(rows) and elements:
        raise _EntryRefused(Refusal.DETAIL_INVALID, "transaction details outside NtryDtls")
    return tuple(
        _detail(tree, element, row, direction, n)
        for n, (element, row) in enumerate(zip(elements, rows, strict=False), start=1)
    )


def _detail(
    tree: _Tree, element: Any, row: Mapping[str, Any], direction: Direction, n: int
) -> EntryDetail:
    what = f"transaction detail {n}"
    fen: int | None = None
    path = "Amt" if tree.find(element, "Amt") is not None else "AmtDtls/TxAmt/Amt"
    if tree.find(element, path) is not None:
        try:
            fen = _amount(tree, element, what, path)
        except _EntryRefused as why:
            raise _EntryRefused(Refusal.DETAIL_INVALID, why.detail) from None
    own = tree.text(element, "CdtDbtInd")
    if own is not None and _INDICATORS.get(own) is not direction:
        raise _EntryRefused(
            Refusal.DETAIL_INVALID, f"{what}: CdtDbtInd {own!r} differs from its entry's"
        )
    party = "Dbtr" if direction is Direction.CREDIT else "Cdtr"
    name_key, iban_key = (
        ("DebtorName", "DebtorIBAN") if party == "Dbtr" else ("CreditorName", "CreditorIBAN")
    )
    account = tree.text(element, f"RltdPties/{party}Acct/Id/Othr/Id") or row.get(iban_key)
    end_to_end = row.get("EndToEndId")
    return EntryDetail(
        amount_fen=fen,
        end_to_end_id=None if end_to_end == _NOT_PROVIDED else _clip(end_to_end, REF_LENGTH_MAX),
        bank_ref=_clip(tree.text(element, "Refs/AcctSvcrRef"), REF_LENGTH_MAX),
        batch_ref=_clip(
            tree.text(element, "Refs/PmtInfId") or tree.text(element, "Refs/MsgId"),
            REF_LENGTH_MAX,
        ),
        remittance=_clip(
            row.get("RemittanceInformationFull") or row.get("RemittanceInformation"),
            TEXT_LENGTH_MAX,
        ),
        counterparty_name=_clip(row.get(name_key), TEXT_LENGTH_MAX),
        counterparty_account=_clip(account, REF_LENGTH_MAX),
    )


def _check_details_add_up(details: tuple[EntryDetail, ...], entry_fen: int) -> None:
    """Every detail has an amount and they add up to the entry's, or no detail has one."""
    amounts = [d.amount_fen for d in details if d.amount_fen is not None]
    if not amounts:
        return
    if len(amounts) != len(details):
        raise _EntryRefused(
            Refusal.DETAIL_INVALID, "some transaction details carry an amount and some do not"
        )
    if sum(amounts) != entry_fen:
        raise _EntryRefused(
            Refusal.DETAILS_DO_NOT_ADD_UP,
            f"the details add up to {sum(amounts)} fen, the entry is {entry_fen} fen",
        )
