"""Write ISO 20022 camt.053.001.08 statements: the bank's side of the escrow account, as test
and demo data (a real statement comes from the bank). Pure: builds bytes, writes no file.

It writes what the parser reads back (`parse_camt053(camt053_xml(s))` gives `s` again): entries
with their references, batch entries with one TxDtls per transaction, counterparties' accounts
as Othr/Id (Chinese account numbers are no IBANs). Amounts are yuan text from integer fen.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime

from reconciliation.bank.statement import BankEntry, BankStatement, Direction, EntryDetail

CAMT053_NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
_INDICATOR = {Direction.CREDIT: "CRDT", Direction.DEBIT: "DBIT"}


def yuan_text(amount_fen: int) -> str:
    """12345 -> '123.45' (exact integer arithmetic)."""
    if amount_fen < 0:
        raise ValueError("amounts in a statement are never negative (the indicator signs them)")
    whole, cents = divmod(amount_fen, 100)
    return f"{whole}.{cents:02d}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{CAMT053_NS}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _account(parent: ET.Element, tag: str, account: str) -> None:
    _sub(_sub(_sub(_sub(parent, tag), "Id"), "Othr"), "Id", account)


def _balance(statement: ET.Element, code: str, signed_fen: int, day: str) -> None:
    balance = _sub(statement, "Bal")
    _sub(_sub(_sub(balance, "Tp"), "CdOrPrtry"), "Cd", code)
    _sub(balance, "Amt", yuan_text(abs(signed_fen)), Ccy="CNY")
    _sub(balance, "CdtDbtInd", "CRDT" if signed_fen >= 0 else "DBIT")
    _sub(_sub(balance, "Dt"), "Dt", day)


def _detail(parent: ET.Element, detail: EntryDetail, direction: Direction) -> None:
    tx = _sub(parent, "TxDtls")
    refs = _sub(tx, "Refs")
    if detail.batch_ref is not None:
        _sub(refs, "PmtInfId", detail.batch_ref)
    if detail.bank_ref is not None:
        _sub(refs, "AcctSvcrRef", detail.bank_ref)
    if detail.end_to_end_id is not None:
        _sub(refs, "EndToEndId", detail.end_to_end_id)
    if detail.amount_fen is not None:
        _sub(tx, "Amt", yuan_text(detail.amount_fen), Ccy="CNY")
        _sub(tx, "CdtDbtInd", _INDICATOR[direction])
    if detail.counterparty_name is not None or detail.counterparty_account is not None:
        party = "Dbtr" if direction is Direction.CREDIT else "Cdtr"
        parties = _sub(tx, "RltdPties")
        if detail.counterparty_name is not None:
            _sub(_sub(_sub(parties, party), "Pty"), "Nm", detail.counterparty_name)
        if detail.counterparty_account is not None:
            _account(parties, f"{party}Acct", detail.counterparty_account)
    if detail.remittance is not None:
        _sub(_sub(tx, "RmtInf"), "Ustrd", detail.remittance)


def _entry(statement: ET.Element, entry: BankEntry) -> None:
    node = _sub(statement, "Ntry")
    _sub(node, "Amt", yuan_text(entry.amount_fen), Ccy="CNY")
    _sub(node, "CdtDbtInd", _INDICATOR[entry.direction])
    if entry.reversal:
        _sub(node, "RvslInd", "true")
    _sub(_sub(node, "Sts"), "Cd", "BOOK")
    _sub(_sub(node, "BookgDt"), "Dt", entry.booking_date.isoformat())
    _sub(_sub(node, "ValDt"), "Dt", entry.value_date.isoformat())
    _sub(node, "AcctSvcrRef", entry.bank_ref)
    domain = _sub(_sub(node, "BkTxCd"), "Domn")
    _sub(domain, "Cd", "PMNT")
    family = _sub(domain, "Fmly")
    _sub(family, "Cd", "RCDT" if entry.direction is Direction.CREDIT else "ICDT")
    _sub(family, "SubFmlyCd", "DMCT")
    if entry.details or entry.batch_ref is not None:
        details = _sub(node, "NtryDtls")
        if entry.batch_ref is not None:
            batch = _sub(details, "Btch")
            _sub(batch, "PmtInfId", entry.batch_ref)
            _sub(batch, "NbOfTxs", str(max(len(entry.details), 1)))
        for detail in entry.details:
            _detail(details, detail, entry.direction)
    if entry.info is not None:
        _sub(node, "AddtlNtryInf", entry.info)


def _statement(root: ET.Element, statement: BankStatement, created: str) -> None:
    node = _sub(root, "Stmt")
    _sub(node, "Id", statement.statement_id)
    _sub(node, "CreDtTm", created)
    account = _sub(node, "Acct")
    _sub(_sub(_sub(account, "Id"), "Othr"), "Id", statement.account)
    _sub(account, "Ccy", statement.currency)
    days = [e.booking_date for e in statement.entries]
    first = min(days).isoformat() if days else created[:10]
    last = max(days).isoformat() if days else created[:10]
    if statement.opening_fen is not None:
        _balance(node, "OPBD", statement.opening_fen, first)
    if statement.closing_fen is not None:
        _balance(node, "CLBD", statement.closing_fen, last)
    for entry in statement.entries:
        _entry(node, entry)


def camt053_xml(statements: Sequence[BankStatement]) -> bytes:
    """One BkToCstmrStmt document holding `statements` (their message id is the first one's)."""
    if not statements:
        raise ValueError("a camt.053 document holds at least one statement")
    first = statements[0]
    created_at = first.created_at or datetime(2000, 1, 1, tzinfo=UTC)
    created = created_at.replace(microsecond=0).isoformat()
    ET.register_namespace("", CAMT053_NS)
    document = ET.Element(f"{{{CAMT053_NS}}}Document")
    body = _sub(document, "BkToCstmrStmt")
    header = _sub(body, "GrpHdr")
    _sub(header, "MsgId", first.message_id)
    _sub(header, "CreDtTm", created)
    for statement in statements:
        _statement(body, statement, created)
    ET.indent(document)
    xml: bytes = ET.tostring(document, encoding="utf-8", xml_declaration=True)
    return xml
