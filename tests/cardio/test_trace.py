"""The APDU trace logs names, headers, lengths and status words, never data."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from cardio import testing
from cardio.errors import CardRemoved
from cardio.inproc import InProcessTransport
from cardio.keystore import KeyStore
from cardio.purse import Purse
from cardio.softcard import SoftCard
from cardio.trace import TracingTransport


def test_trace_records_every_exchange_without_data(
    soft_card: SoftCard, key_store: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    inner = InProcessTransport(soft_card)
    transport = TracingTransport(inner)
    purse = Purse(transport)
    with caplog.at_level(logging.DEBUG, logger="cardio.apdu"):
        info = purse.select().public_info
        outcome = testing.purchase(
            purse,
            testing.ClearKeys(key_store),
            info,
            50,
            bytes.fromhex("000001000050"),
            3,
            datetime(2026, 11, 29, 8, 0, 0),
        )
    names = [e.name for e in transport.entries]
    assert names == ["SELECT", "INITIALIZE", "DEBIT FOR PURCHASE"]
    assert all(e.sw == 0x9000 for e in transport.entries)
    text = caplog.text
    assert "DEBIT FOR PURCHASE 80540100" in text
    for secret in (outcome.debit.tac.hex(), outcome.debit.mac2.hex(), info.card_no, "4c6920"):
        assert secret.upper() not in text.upper()
    inner.remove()
    with pytest.raises(CardRemoved):
        purse.get_balance()
    assert transport.entries[-1].sw is None
