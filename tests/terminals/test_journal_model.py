"""A stateful model test of the journal and its upload batches (Hypothesis rule-based machine).

Taps complete or tear, torn taps resolve, the power fails between the SAM and the journal, and
uploads lose their acknowledgements; the server (a model) must end up with every record in its
final state, every batch id must always carry the same bytes, and the sequence has no holes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from terminals.journal import Journal, RecordKind, RecordStatus, TapRecord

from .conftest import TERMINAL_ID

DRAFT = TapRecord(
    RecordKind.PURCHASE,
    RecordStatus.GREY,
    0,
    "3100000000000001",
    0,
    9,
    200,
    10_000,
    9_800,
    datetime(2026, 11, 30, tzinfo=UTC),
    None,
    "adult",
)
LATER = datetime.now(UTC) + timedelta(days=1)


class JournalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="journal-model-"))
        self.journal = Journal(self.directory / "j.db", TERMINAL_ID)
        self.sam_last = 0  # the SAM's serial, as the SAM would keep it
        self.counter = 0
        self.unresolved: list[int] = []
        self.final: dict[
            int, str
        ] = {}  # seq -> complete / grey (as it should end up on the server)
        self.server_batches: dict[str, str] = {}  # batch id -> sha256 of the body
        self.server_records: dict[int, str] = {}  # seq -> status last stored

    def teardown(self) -> None:
        self.journal.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _tap(self) -> int:
        self.counter += 1
        draft = replace(DRAFT, card_counter=self.counter % 65536)
        intent = self.journal.append_intent(draft)
        self.sam_last += 1
        self.journal.append_grey(intent, replace(draft, terminal_seq=self.sam_last))
        # a serial lost to an earlier power cut is filled now, as not debited (grey on the wire)
        for seq in range(1, self.sam_last):
            self.final.setdefault(seq, "grey")
        return self.sam_last

    @rule()
    def tap_paid(self) -> None:
        seq = self._tap()
        self.journal.complete(seq, b"\x01\x02\x03\x04", 9_800)
        self.final[seq] = "complete"

    @rule()
    def tap_torn(self) -> None:
        seq = self._tap()
        self.unresolved.append(seq)
        self.final[seq] = "grey"

    @precondition(lambda self: self.unresolved)
    @rule(data=st.data(), debited=st.booleans())
    def card_returns(self, data: st.DataObject, debited: bool) -> None:
        seq = data.draw(st.sampled_from(self.unresolved))
        self.unresolved.remove(seq)
        if debited:
            self.journal.complete(seq, b"\x05\x06\x07\x08", 9_800)
            self.final[seq] = "complete"
        else:
            self.journal.mark_not_debited(seq)

    @rule()
    def power_cut_between_sam_and_journal(self) -> None:
        self.counter += 1
        self.journal.append_intent(replace(DRAFT, card_counter=self.counter % 65536))
        self.sam_last += 1

    @rule()
    def restart(self) -> None:
        self.journal.close()
        self.journal = Journal(self.directory / "j.db", TERMINAL_ID)
        self.journal.reconcile(self.sam_last)
        for seq in range(1, self.sam_last + 1):
            self.final.setdefault(seq, "grey")

    @rule(records_max=st.integers(1, 4), ack_lost=st.booleans())
    def upload(self, records_max: int, ack_lost: bool) -> None:
        batch = self.journal.next_batch(records_max=records_max, grey_hold=timedelta(0), now=LATER)
        if batch is None:
            return
        digest = hashlib.sha256(batch.body).hexdigest()
        known = self.server_batches.setdefault(batch.batch_id, digest)
        assert known == digest, "a batch id was re-sent with different bytes"
        for record in json.loads(batch.body)["records"]:
            self.server_records[record["terminal_seq"]] = record["status"]
        if not ack_lost:
            self.journal.acknowledge(batch, duplicate=False)

    @invariant()
    def no_holes_once_reconciled(self) -> None:
        seqs = [r.terminal_seq for r in self.journal.records()]
        assert seqs == sorted(set(seqs))
        if seqs:
            assert self.journal.sequence_holes() == [] or max(seqs) < self.sam_last

    def drain(self) -> None:
        self.journal.reconcile(self.sam_last)
        for seq in range(1, self.sam_last + 1):
            self.final.setdefault(seq, "grey")
        while (
            batch := self.journal.next_batch(records_max=5, grey_hold=timedelta(0), now=LATER)
        ) is not None:
            digest = hashlib.sha256(batch.body).hexdigest()
            assert self.server_batches.setdefault(batch.batch_id, digest) == digest
            for record in json.loads(batch.body)["records"]:
                self.server_records[record["terminal_seq"]] = record["status"]
            self.journal.acknowledge(batch, duplicate=False)
        assert self.journal.sequence_holes() == []
        assert self.server_records == self.final


class DrainingMachine(JournalMachine):
    def teardown(self) -> None:
        try:
            self.drain()
        finally:
            super().teardown()


DrainingMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestJournalModel = DrainingMachine.TestCase
