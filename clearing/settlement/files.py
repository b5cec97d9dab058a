"""Settlement instructions as files: a CSV for finance staff and ISO 20022 pain.001.001.09
(customer credit transfer initiation) for the bank. Pure: builds bytes, writes nothing.

Amounts are integer fen in the CSV and yuan with two decimals in the XML (the ISO amount type);
the conversion is exact integer arithmetic, never float.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from cardio.money import yuan
from clearing.settlement.references import (
    MAX35,
    SettlementFileError,
    end_to_end_id,
    message_id,
    payment_information_id,
)

PAIN001_NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
CURRENCY = "CNY"
MAX140 = 140
ACCOUNT_ID_MAX = 34
INSTRUCTIONS_MAX = 100_000  # one file per business day; far above the number of participants

__all__ = [
    "CSV_COLUMNS",
    "Debtor",
    "PayoutLine",
    "SettlementFileError",
    "check_pain001",
    "end_to_end_id",
    "message_id",
    "pain001_xml",
    "settlement_csv",
    "yuan_text",
]

CSV_COLUMNS = (
    "business_day",
    "message_id",
    "end_to_end_id",
    "participant_code",
    "participant_name",
    "bank_name",
    "bank_account",
    "currency",
    "taps",
    "fares_fen",
    "subsidy_fen",
    "insured_fen",
    "gross_fen",
    "commission_bp",
    "commission_fen",
    "net_fen",
    "net_yuan",
)


@dataclass(frozen=True, slots=True)
class Debtor:
    """The card company's escrow account the payouts are paid from."""

    name: str
    account: str
    bank_name: str


@dataclass(frozen=True, slots=True)
class PayoutLine:
    """One participant's settlement line: what it was owed and what it is paid."""

    participant_code: str
    participant_name: str
    bank_name: str
    bank_account: str
    taps: int
    fares_fen: int
    subsidy_fen: int
    insured_fen: int
    commission_bp: int
    commission_fen: int
    net_fen: int

    @property
    def gross_fen(self) -> int:
        return self.fares_fen + self.subsidy_fen + self.insured_fen


def yuan_text(amount_fen: int) -> str:
    """Integer fen to the ISO decimal amount text, e.g. 12345 -> '123.45'."""
    if amount_fen < 0:
        raise SettlementFileError("amounts in settlement files are never negative")
    return yuan(amount_fen, grouped=False)


def settlement_csv(business_day: date, lines: Sequence[PayoutLine]) -> str:
    """Every participant line of the day, zero nets included, in participant order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    msg = message_id(business_day)
    for line in sorted(lines, key=lambda item: item.participant_code):
        writer.writerow(
            (
                business_day.isoformat(),
                msg,
                end_to_end_id(business_day, line.participant_code),
                line.participant_code,
                line.participant_name,
                line.bank_name,
                line.bank_account,
                CURRENCY,
                line.taps,
                line.fares_fen,
                line.subsidy_fen,
                line.insured_fen,
                line.gross_fen,
                line.commission_bp,
                line.commission_fen,
                line.net_fen,
                yuan_text(line.net_fen),
            )
        )
    return out.getvalue()


# Characters XML 1.0 cannot carry (C0 controls but tab, newline, carriage return; surrogates;
# U+FFFE/U+FFFF); names come from the registry and must never break the bank's file.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: str, limit: int, what: str) -> str:
    value = " ".join(_NOT_XML.sub(" ", value).split())
    if not value:
        raise SettlementFileError(f"{what} must not be empty")
    return value[:limit]


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{PAIN001_NS}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _account(parent: ET.Element, tag: str, account: str) -> None:
    node = _sub(parent, tag)
    _sub(_sub(_sub(node, "Id"), "Othr"), "Id", _text(account, ACCOUNT_ID_MAX, "bank account"))


def _agent(parent: ET.Element, tag: str, bank_name: str) -> None:
    _sub(_sub(_sub(parent, tag), "FinInstnId"), "Nm", _text(bank_name, MAX140, "bank name"))


def pain001_xml(
    business_day: date,
    created_at: datetime,
    execution_date: date,
    debtor: Debtor,
    lines: Sequence[PayoutLine],
) -> bytes:
    """One PmtInf paying every positive net from the debtor's account; zero nets are left out
    (there is nothing to transfer) but stay in the CSV."""
    if created_at.tzinfo is None:
        raise SettlementFileError("created_at must be timezone-aware")
    payable = sorted((ln for ln in lines if ln.net_fen > 0), key=lambda ln: ln.participant_code)
    if not payable:
        raise SettlementFileError("nothing to pay: a pain.001 needs at least one transfer")
    if len(payable) > INSTRUCTIONS_MAX:
        raise SettlementFileError(f"at most {INSTRUCTIONS_MAX} instructions per file")
    total_fen = sum(line.net_fen for line in payable)
    ET.register_namespace("", PAIN001_NS)
    document = ET.Element(f"{{{PAIN001_NS}}}Document")
    initiation = _sub(document, "CstmrCdtTrfInitn")
    header = _sub(initiation, "GrpHdr")
    msg = message_id(business_day)
    _sub(header, "MsgId", msg)
    _sub(header, "CreDtTm", created_at.replace(microsecond=0).isoformat())
    _sub(header, "NbOfTxs", str(len(payable)))
    _sub(header, "CtrlSum", yuan_text(total_fen))
    _sub(_sub(header, "InitgPty"), "Nm", _text(debtor.name, MAX140, "debtor name"))
    payment = _sub(initiation, "PmtInf")
    _sub(payment, "PmtInfId", payment_information_id(business_day))
    _sub(payment, "PmtMtd", "TRF")
    _sub(payment, "BtchBookg", "false")
    _sub(payment, "NbOfTxs", str(len(payable)))
    _sub(payment, "CtrlSum", yuan_text(total_fen))
    _sub(_sub(payment, "ReqdExctnDt"), "Dt", execution_date.isoformat())
    _sub(_sub(payment, "Dbtr"), "Nm", _text(debtor.name, MAX140, "debtor name"))
    _account(payment, "DbtrAcct", debtor.account)
    _agent(payment, "DbtrAgt", debtor.bank_name)
    for line in payable:
        transaction = _sub(payment, "CdtTrfTxInf")
        ids = _sub(transaction, "PmtId")
        e2e = end_to_end_id(business_day, line.participant_code)
        _sub(ids, "InstrId", e2e)
        _sub(ids, "EndToEndId", e2e)
        _sub(_sub(transaction, "Amt"), "InstdAmt", yuan_text(line.net_fen), Ccy=CURRENCY)
        _agent(transaction, "CdtrAgt", line.bank_name)
        _sub(
            _sub(transaction, "Cdtr"),
            "Nm",
            _text(line.participant_name, MAX140, "participant name"),
        )
        _account(transaction, "CdtrAcct", line.bank_account)
        remittance = (
            f"onecard settlement {business_day.isoformat()} {line.participant_code}: "
            f"gross {yuan_text(line.gross_fen)} commission {yuan_text(line.commission_fen)}"
        )
        _sub(_sub(transaction, "RmtInf"), "Ustrd", remittance[:MAX140])
    ET.indent(document)
    xml: bytes = ET.tostring(document, encoding="utf-8", xml_declaration=True)
    return xml


# The element order the pain.001.001.09 schema prescribes for what we emit.
_GRPHDR_ORDER = ("MsgId", "CreDtTm", "NbOfTxs", "CtrlSum", "InitgPty")
_PMTINF_HEAD = (
    "PmtInfId",
    "PmtMtd",
    "BtchBookg",
    "NbOfTxs",
    "CtrlSum",
    "ReqdExctnDt",
    "Dbtr",
    "DbtrAcct",
    "DbtrAgt",
)
_TX_ORDER = ("PmtId", "Amt", "CdtrAgt", "Cdtr", "CdtrAcct", "RmtInf")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _fen(text: str | None) -> int:
    if text is None or not re.fullmatch(r"[0-9]{1,16}\.[0-9]{2}", text):
        raise SettlementFileError(f"not an amount with two decimals: {text!r}")
    whole, cents = text.split(".")
    return int(whole) * 100 + int(cents)


def check_pain001(xml: bytes) -> list[str]:
    """Structural check of a pain.001.001.09 file as we write it: namespace, element order,
    mandatory elements, text lengths, counts and control sums. Returns the problems found."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        return [f"not well-formed XML: {error}"]
    initiation = _initiation(root)
    if isinstance(initiation, str):
        return [initiation]
    ns = {"p": PAIN001_NS}
    header = initiation.find("p:GrpHdr", ns)
    if header is None:
        return ["GrpHdr is missing"]
    problems: list[str] = []
    if tuple(_local(c.tag) for c in header) != _GRPHDR_ORDER:
        problems.append(f"GrpHdr elements must be {_GRPHDR_ORDER}")
    msg_id = header.findtext("p:MsgId", None, ns) or ""
    if not 1 <= len(msg_id) <= MAX35:
        problems.append("MsgId must be 1-35 characters")
    total_count = 0
    total_fen = 0
    for payment in initiation.findall("p:PmtInf", ns):
        count, sum_fen = _check_payment(payment, problems)
        total_count += count
        total_fen += sum_fen
    _check_control(header, total_count, total_fen, "GrpHdr", "the", problems)
    return problems


def _initiation(root: ET.Element) -> ET.Element | str:
    """The one CstmrCdtTrfInitn of a Document (GrpHdr then PmtInf+), or what is wrong."""
    if root.tag != f"{{{PAIN001_NS}}}Document":
        return f"root must be Document in {PAIN001_NS}, got {root.tag}"
    children = list(root)
    if len(children) != 1 or _local(children[0].tag) != "CstmrCdtTrfInitn":
        return "Document must hold exactly one CstmrCdtTrfInitn"
    initiation = children[0]
    parts = [_local(child.tag) for child in initiation]
    if not parts or parts[0] != "GrpHdr" or any(p != "PmtInf" for p in parts[1:]) or len(parts) < 2:
        return "CstmrCdtTrfInitn must be GrpHdr then one or more PmtInf"
    return initiation


def _check_payment(payment: ET.Element, problems: list[str]) -> tuple[int, int]:
    """Check one PmtInf; (its transactions that count, their sum in fen)."""
    ns = {"p": PAIN001_NS}
    tags = [_local(c.tag) for c in payment]
    head, transactions = tags[: len(_PMTINF_HEAD)], tags[len(_PMTINF_HEAD) :]
    if tuple(head) != _PMTINF_HEAD or any(t != "CdtTrfTxInf" for t in transactions):
        problems.append(f"PmtInf elements must be {_PMTINF_HEAD} then CdtTrfTxInf*")
        return 0, 0
    if payment.findtext("p:PmtMtd", None, ns) != "TRF":
        problems.append("PmtMtd must be TRF")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", payment.findtext("p:ReqdExctnDt/p:Dt", "", ns) or ""):
        problems.append("ReqdExctnDt/Dt must be an ISO date")
    count = 0
    sum_fen = 0
    seen_ids: set[str] = set()
    for transaction in payment.findall("p:CdtTrfTxInf", ns):
        fen = _check_transaction(transaction, seen_ids, problems)
        if fen is not None:
            count += 1
            sum_fen += fen
    _check_control(payment, count, sum_fen, "PmtInf", "its", problems)
    return count, sum_fen


def _check_transaction(
    transaction: ET.Element, seen_ids: set[str], problems: list[str]
) -> int | None:
    """Check one CdtTrfTxInf; its amount in fen, None if it has no amount to count."""
    ns = {"p": PAIN001_NS}
    tx_tags = tuple(_local(c.tag) for c in transaction)
    if tx_tags != _TX_ORDER:
        problems.append(f"CdtTrfTxInf elements must be {_TX_ORDER}, got {tx_tags}")
        return None
    e2e = transaction.findtext("p:PmtId/p:EndToEndId", "", ns) or ""
    if not 1 <= len(e2e) <= MAX35:
        problems.append("EndToEndId must be 1-35 characters")
    if e2e in seen_ids:
        problems.append(f"EndToEndId {e2e} repeats")
    seen_ids.add(e2e)
    amount = transaction.find("p:Amt/p:InstdAmt", ns)
    if amount is None or amount.get("Ccy") != CURRENCY:
        problems.append("InstdAmt must carry Ccy=CNY")
        return None
    try:
        fen = _fen(amount.text)
    except SettlementFileError as error:
        problems.append(str(error))
        return None
    if fen <= 0:
        problems.append("InstdAmt must be positive")
    account = transaction.findtext("p:CdtrAcct/p:Id/p:Othr/p:Id", "", ns) or ""
    if not 1 <= len(account) <= ACCOUNT_ID_MAX:
        problems.append("CdtrAcct/Id/Othr/Id must be 1-34 characters")
    name = transaction.findtext("p:Cdtr/p:Nm", "", ns) or ""
    if not 1 <= len(name) <= MAX140:
        problems.append("Cdtr/Nm must be 1-140 characters")
    return fen


def _check_control(
    element: ET.Element, count: int, sum_fen: int, what: str, whose: str, problems: list[str]
) -> None:
    """NbOfTxs and CtrlSum of a GrpHdr or PmtInf against the transactions they cover."""
    ns = {"p": PAIN001_NS}
    if element.findtext("p:NbOfTxs", "", ns) != str(count):
        problems.append(f"{what} NbOfTxs does not match {whose} transactions")
    try:
        if _fen(element.findtext("p:CtrlSum", None, ns)) != sum_fen:
            problems.append(f"{what} CtrlSum does not match {whose} transactions")
    except SettlementFileError as error:
        problems.append(f"{what} CtrlSum: {error}")
