"""The offline journal: an append-only SQLite store (WAL, synchronous=FULL) on the terminal.

A record is committed (fsync'd) before the passenger sees "OK"; nothing is ever updated or
deleted (triggers refuse it): a tap is an intent, then a grey record under the SAM's serial,
then a completion; uploads are frozen batches and acknowledgements. Terminal sequence numbers
are the SAM's transaction serials, so they never repeat; a serial the SAM handed out but the
journal never saw (power cut between the two) is filled from the orphaned intent, so the
sequence has no holes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from terminals.errors import JournalError, invariant

RECORDS_PER_BATCH_MAX = 5000  # the protocol's limit per batch
RECORDS_PER_BATCH_DEFAULT = 500
BATCH_BYTES_MAX = 4 * 1024 * 1024  # the protocol's limit per batch body
SHORT_TEXT_MAX = 64  # the service's limit on rule, category, route, stop, visit and load ids


def short_text(text: str) -> str:
    """`text` if it fits SHORT_TEXT_MAX, else a prefix and a CRC-32 that keeps it distinct."""
    if len(text) <= SHORT_TEXT_MAX:
        return text
    digest = format(zlib.crc32(text.encode("utf-8")), "08x")
    return f"{text[: SHORT_TEXT_MAX - 9]}~{digest}"


GREY_HOLD_DEFAULT = timedelta(hours=1)  # how long a torn tap waits for its card before upload
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS intents (
    intent_id INTEGER PRIMARY KEY AUTOINCREMENT,
    card_no TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    terminal_seq INTEGER PRIMARY KEY,
    intent_id INTEGER NOT NULL UNIQUE REFERENCES intents (intent_id),
    card_no TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_card ON records (card_no);
CREATE TABLE IF NOT EXISTS completions (
    terminal_seq INTEGER PRIMARY KEY REFERENCES records (terminal_seq),
    outcome TEXT NOT NULL CHECK (outcome IN ('complete', 'not_debited')),
    tac TEXT,
    balance_after_fen INTEGER,
    completed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_no INTEGER PRIMARY KEY,
    batch_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    records INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_records (
    batch_no INTEGER NOT NULL REFERENCES batches (batch_no),
    terminal_seq INTEGER NOT NULL REFERENCES records (terminal_seq),
    status TEXT NOT NULL,
    PRIMARY KEY (batch_no, terminal_seq)
);
CREATE INDEX IF NOT EXISTS batch_records_seq ON batch_records (terminal_seq, status);
CREATE TABLE IF NOT EXISTS acks (
    batch_no INTEGER PRIMARY KEY REFERENCES batches (batch_no),
    duplicate INTEGER NOT NULL,
    acked_at TEXT NOT NULL
);
"""
_APPEND_ONLY = ("intents", "records", "completions", "batches", "batch_records", "acks")


class RecordKind(StrEnum):
    PURCHASE = "purchase"
    LOAD = "load"
    CLINIC = "clinic"


class RecordStatus(StrEnum):
    COMPLETE = "complete"
    GREY = "grey"


@dataclass(frozen=True, slots=True)
class TapRecord:
    """One journal record, field for field the tap record of docs/terminal-protocol.md."""

    kind: RecordKind
    status: RecordStatus
    terminal_seq: int  # 0 until the SAM allocated it
    card_no: str
    card_counter: int
    txn_type: int
    amount_fen: int
    balance_before_fen: int
    balance_after_fen: int
    occurred_at: datetime
    tac: str | None
    card_type: str
    rider_category: str = ""
    full_fare_fen: int = 0
    fare_rule: str = ""
    route_id: str | None = None
    stop_id: str | None = None
    insured_fen: int = 0
    visit_id: str | None = None
    load_id: str | None = None
    offline_fallback: bool = False
    deny_list_version: int = 0
    action_list_version: int = 0

    def __post_init__(self) -> None:
        invariant(self.amount_fen >= 0, "a record's amount is never negative")
        invariant(
            self.balance_before_fen >= 0 and self.balance_after_fen >= 0,
            "balances are never negative",
        )
        invariant(0 <= self.card_counter <= 0xFFFF, "the card counter is 2 bytes")
        invariant(self.occurred_at.tzinfo is not None, "record times are timezone-aware")
        invariant(len(self.card_no) == 16 and self.card_no.isdigit(), "a card number is 16 digits")
        for text in (
            self.rider_category,
            self.fare_rule,
            self.route_id,
            self.stop_id,
            self.visit_id,
            self.load_id,
        ):
            invariant(
                text is None or len(text) <= SHORT_TEXT_MAX,
                "a record's short text is at most 64 chars",
            )

    def to_wire(self) -> dict[str, object]:
        """The JSON object of the upload protocol."""
        body = asdict(self)
        body["kind"] = self.kind.value
        body["status"] = self.status.value
        body["occurred_at"] = _rfc3339(self.occurred_at)
        return body

    @classmethod
    def from_wire(cls, body: dict[str, object]) -> TapRecord:
        values = dict(body)
        values["kind"] = RecordKind(str(values["kind"]))
        values["status"] = RecordStatus(str(values["status"]))
        values["occurred_at"] = datetime.fromisoformat(
            str(values["occurred_at"]).replace("Z", "+00:00")
        )
        return cls(**values)  # type: ignore[arg-type]


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class Batch:
    """A frozen upload batch: re-sent byte for byte until the server acknowledges it."""

    batch_no: int
    batch_id: str
    body: bytes
    records: int


@dataclass(frozen=True, slots=True)
class JournalStats:
    records: int
    complete: int
    grey: int
    not_debited: int
    uploaded: int
    pending_upload: int
    batches_unacked: int
    first_seq: int
    last_seq: int


class Journal:
    """The terminal's append-only journal. Safe to use from several threads (one connection each)."""

    def __init__(self, path: Path | str, terminal_id: str) -> None:
        invariant(len(terminal_id) == 12, "a terminal id is 12 hex digits")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.terminal_id = terminal_id
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        try:
            conn = self._conn()
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:  # a folder, another file, a damaged journal
            self.close()
            raise JournalError(f"cannot open the journal {self.path}: {error}") from error
        for table in _APPEND_ONLY:
            for action in ("UPDATE", "DELETE"):
                conn.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END"
                )
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'terminal_id'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('terminal_id', ?)", (terminal_id,)
                )
            elif row[0] != terminal_id:
                raise JournalError(
                    f"{self.path} is the journal of terminal {row[0]}, not {terminal_id}"
                )

    # --- connections ---------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            invariant(mode == "wal", "the journal needs SQLite WAL mode")
            # FULL: every commit fsyncs the WAL, so a committed record survives a power cut.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise JournalError(f"journal {self.path} is not writable: {error}") from error
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as error:
            raise JournalError(f"journal {self.path} could not commit: {error}") from error

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # --- the tap path --------------------------------------------------------------------------

    def append_intent(self, draft: TapRecord) -> int:
        """Durably note what is about to be asked of the SAM (before it allocates a serial)."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO intents (card_no, body, created_at) VALUES (?, ?, ?)",
                (draft.card_no, json.dumps(draft.to_wire()), _now()),
            )
            intent_id = cursor.lastrowid
        invariant(intent_id is not None, "SQLite gave no intent id")
        return int(intent_id)  # type: ignore[arg-type]

    def append_grey(self, intent_id: int, record: TapRecord) -> None:
        """Durably store the record under the SAM serial before the debit is sent to the card."""
        invariant(record.status is RecordStatus.GREY and record.tac is None, "a new record is grey")
        invariant(record.terminal_seq >= 1, "a record carries the SAM's serial")
        with self._transaction() as conn:
            self._fill_orphans(conn, record.terminal_seq - 1, exclude_intent=intent_id)
            conn.execute(
                "INSERT INTO records (terminal_seq, intent_id, card_no, body, created_at) VALUES (?, ?, ?, ?, ?)",
                (
                    record.terminal_seq,
                    intent_id,
                    record.card_no,
                    json.dumps(record.to_wire()),
                    _now(),
                ),
            )

    def complete(self, terminal_seq: int, tac: bytes, balance_after_fen: int) -> None:
        """Durably complete a grey record with the card's TAC (before "OK" is shown)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO completions (terminal_seq, outcome, tac, balance_after_fen, completed_at) "
                "VALUES (?, 'complete', ?, ?, ?)",
                (terminal_seq, tac.hex().upper(), balance_after_fen, _now()),
            )

    def mark_not_debited(self, terminal_seq: int) -> None:
        """The card proved (9406) the debit of this grey record never happened."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO completions (terminal_seq, outcome, completed_at) VALUES (?, 'not_debited', ?)",
                (terminal_seq, _now()),
            )

    def reconcile(self, sam_last_serial: int) -> int:
        """Fill serials the SAM handed out but the journal never recorded; returns how many."""
        with self._transaction() as conn:
            return self._fill_orphans(conn, sam_last_serial, exclude_intent=None)

    def _fill_orphans(
        self, conn: sqlite3.Connection, up_to_seq: int, exclude_intent: int | None
    ) -> int:
        last = conn.execute("SELECT COALESCE(MAX(terminal_seq), 0) FROM records").fetchone()[0]
        filled = 0
        for seq in range(last + 1, up_to_seq + 1):
            orphan = conn.execute(
                "SELECT intent_id, body FROM intents i WHERE NOT EXISTS "
                "(SELECT 1 FROM records r WHERE r.intent_id = i.intent_id) AND i.intent_id IS NOT ? "
                "ORDER BY intent_id DESC LIMIT 1",
                (exclude_intent,),
            ).fetchone()
            invariant(orphan is not None, f"SAM serial {seq} has neither a record nor an intent")
            draft = TapRecord.from_wire(json.loads(orphan[1]))
            record = replace(draft, terminal_seq=seq, status=RecordStatus.GREY, tac=None)
            conn.execute(
                "INSERT INTO records (terminal_seq, intent_id, card_no, body, created_at) VALUES (?, ?, ?, ?, ?)",
                (seq, orphan[0], record.card_no, json.dumps(record.to_wire()), _now()),
            )
            # The debit is sent only after its grey record is durable: this one never reached a card.
            conn.execute(
                "INSERT INTO completions (terminal_seq, outcome, completed_at) VALUES (?, 'not_debited', ?)",
                (seq, _now()),
            )
            filled += 1
        return filled

    # --- reading ------------------------------------------------------------------------------

    _SELECT = (
        "SELECT r.body, c.outcome, c.tac, c.balance_after_fen FROM records r "
        "LEFT JOIN completions c ON c.terminal_seq = r.terminal_seq "
    )

    @staticmethod
    def _final(row: tuple) -> TapRecord:
        record = TapRecord.from_wire(json.loads(row[0]))
        if row[1] == "complete":
            return replace(
                record, status=RecordStatus.COMPLETE, tac=row[2], balance_after_fen=row[3]
            )
        return record

    def record(self, terminal_seq: int) -> TapRecord | None:
        row = (
            self._conn()
            .execute(self._SELECT + "WHERE r.terminal_seq = ?", (terminal_seq,))
            .fetchone()
        )
        return None if row is None else self._final(row)

    def records(self) -> list[TapRecord]:
        """Every record in sequence order, in its latest known state."""
        rows = self._conn().execute(self._SELECT + "ORDER BY r.terminal_seq").fetchall()
        return [self._final(row) for row in rows]

    def records_of_card(self, card_no: str) -> list[TapRecord]:
        rows = (
            self._conn()
            .execute(self._SELECT + "WHERE r.card_no = ? ORDER BY r.terminal_seq", (card_no,))
            .fetchall()
        )
        return [self._final(row) for row in rows]

    def unresolved_grey(self, card_no: str | None = None) -> list[TapRecord]:
        """Grey records whose outcome is still unknown (torn taps), oldest first."""
        query = self._SELECT + "WHERE c.outcome IS NULL"
        args: tuple = ()
        if card_no is not None:
            query += " AND r.card_no = ?"
            args = (card_no,)
        rows = self._conn().execute(query + " ORDER BY r.terminal_seq", args).fetchall()
        return [self._final(row) for row in rows]

    def outcome(self, terminal_seq: int) -> str | None:
        row = (
            self._conn()
            .execute("SELECT outcome FROM completions WHERE terminal_seq = ?", (terminal_seq,))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def last_seq(self) -> int:
        return int(
            self._conn().execute("SELECT COALESCE(MAX(terminal_seq), 0) FROM records").fetchone()[0]
        )

    def sequence_holes(self) -> list[tuple[int, int]]:
        """Missing terminal_seq ranges between 1 and the last record (should always be empty)."""
        seqs = [
            row[0] for row in self._conn().execute("SELECT terminal_seq FROM records ORDER BY 1")
        ]
        holes = []
        expected = 1
        for seq in seqs:
            if seq > expected:
                holes.append((expected, seq - 1))
            expected = seq + 1
        return holes

    # --- upload ---------------------------------------------------------------------------------

    def next_batch(
        self,
        records_max: int = RECORDS_PER_BATCH_DEFAULT,
        grey_hold: timedelta = GREY_HOLD_DEFAULT,
        now: datetime | None = None,
        bytes_max: int = BATCH_BYTES_MAX,
    ) -> Batch | None:
        """The oldest unacknowledged batch, else a new frozen batch of records not yet uploaded
        in their current state (torn taps only after `grey_hold`); None if nothing is due."""
        invariant(1 <= records_max <= RECORDS_PER_BATCH_MAX, "batch size out of bounds")
        invariant(1024 <= bytes_max <= BATCH_BYTES_MAX, "batch byte limit out of bounds")
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT batch_no, batch_id, body, records FROM batches b WHERE NOT EXISTS "
                "(SELECT 1 FROM acks a WHERE a.batch_no = b.batch_no) ORDER BY batch_no LIMIT 1"
            ).fetchone()
            if row is not None:
                return Batch(row[0], row[1], bytes(row[2]), row[3])
            cutoff = ((now or datetime.now(UTC)) - grey_hold).isoformat()
            rows = conn.execute(
                self._SELECT + "WHERE NOT EXISTS (SELECT 1 FROM batch_records b WHERE "
                "b.terminal_seq = r.terminal_seq AND b.status = "
                "CASE WHEN c.outcome = 'complete' THEN 'complete' ELSE 'grey' END) "
                "AND (c.outcome IS NOT NULL OR r.created_at <= ?) "
                "ORDER BY r.terminal_seq LIMIT ?",
                (cutoff, records_max),
            ).fetchall()
            if not rows:
                return None
            records = [self._final(r) for r in rows]
            batch_no = conn.execute(
                "SELECT COALESCE(MAX(batch_no), 0) + 1 FROM batches"
            ).fetchone()[0]
            batch_id = f"{self.terminal_id}-{batch_no:08d}"
            while True:
                body = json.dumps(
                    {"batch_id": batch_id, "records": [r.to_wire() for r in records]},
                    separators=(",", ":"),
                ).encode("utf-8")
                if len(body) <= bytes_max:
                    break
                if len(records) == 1:
                    raise JournalError(
                        f"record {records[0].terminal_seq} alone is larger than {bytes_max} bytes"
                    )
                records = records[: len(records) // 2]  # the rest goes in the next batch
            conn.execute(
                "INSERT INTO batches (batch_no, batch_id, body, records, created_at) VALUES (?, ?, ?, ?, ?)",
                (batch_no, batch_id, body, len(records), _now()),
            )
            conn.executemany(
                "INSERT INTO batch_records (batch_no, terminal_seq, status) VALUES (?, ?, ?)",
                [(batch_no, r.terminal_seq, r.status.value) for r in records],
            )
            return Batch(batch_no, batch_id, body, len(records))

    def acknowledge(self, batch: Batch, duplicate: bool) -> None:
        """The server acknowledged the batch (stored it durably): its records are uploaded."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO acks (batch_no, duplicate, acked_at) VALUES (?, ?, ?)",
                (batch.batch_no, int(duplicate), _now()),
            )

    def stats(self) -> JournalStats:
        conn = self._conn()
        total, first, last = conn.execute(
            "SELECT COUNT(*), COALESCE(MIN(terminal_seq), 0), COALESCE(MAX(terminal_seq), 0) FROM records"
        ).fetchone()
        outcomes = dict(
            conn.execute("SELECT outcome, COUNT(*) FROM completions GROUP BY outcome").fetchall()
        )
        uploaded = conn.execute(
            "SELECT COUNT(DISTINCT br.terminal_seq) FROM batch_records br JOIN acks a ON a.batch_no = br.batch_no"
        ).fetchone()[0]
        unacked = conn.execute(
            "SELECT COUNT(*) FROM batches b WHERE NOT EXISTS (SELECT 1 FROM acks a WHERE a.batch_no = b.batch_no)"
        ).fetchone()[0]
        pending = conn.execute(
            "SELECT COUNT(*) FROM records r LEFT JOIN completions c ON c.terminal_seq = r.terminal_seq "
            "WHERE NOT EXISTS (SELECT 1 FROM batch_records b JOIN acks a ON a.batch_no = b.batch_no "
            "WHERE b.terminal_seq = r.terminal_seq AND b.status = "
            "CASE WHEN c.outcome = 'complete' THEN 'complete' ELSE 'grey' END)"
        ).fetchone()[0]
        complete = outcomes.get("complete", 0)
        not_debited = outcomes.get("not_debited", 0)
        return JournalStats(
            records=total,
            complete=complete,
            grey=total - complete - not_debited,
            not_debited=not_debited,
            uploaded=uploaded,
            pending_upload=pending,
            batches_unacked=unacked,
            first_seq=first,
            last_seq=last,
        )
