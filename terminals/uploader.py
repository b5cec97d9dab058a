"""The uploader: hands journal batches to the clearing service and fetches list deltas, at its own pace.

A batch is marked uploaded only after the server acknowledged it; an unacknowledged batch is
re-sent byte for byte (the server stores it once). Failures back off exponentially with jitter.
It runs on its own thread: a card-reader callback only wakes it and never waits for it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from terminals.client import ClearingClient
from terminals.errors import TerminalError
from terminals.journal import GREY_HOLD_DEFAULT, RECORDS_PER_BATCH_DEFAULT, Journal
from terminals.lists import ListDeltaRefused, ListStore

BATCHES_PER_CYCLE_MAX = 100
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 300.0
INTERVAL_S_DEFAULT = 30.0


@dataclass(slots=True)
class SyncReport:
    batches_sent: int = 0
    records_sent: int = 0
    duplicates: int = 0
    sequence_gaps: list[dict[str, int]] = field(default_factory=list)
    deny_version: int = 0
    action_version: int = 0


class Uploader:
    """Uploads the journal and refreshes the lists; `sync_once` for one cycle, `start` for a thread."""

    def __init__(
        self,
        journal: Journal,
        lists: ListStore,
        client_factory: Callable[[], ClearingClient],
        *,
        records_per_batch: int = RECORDS_PER_BATCH_DEFAULT,
        grey_hold: timedelta = GREY_HOLD_DEFAULT,
        interval_s: float = INTERVAL_S_DEFAULT,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self.journal = journal
        self.lists = lists
        self._client_factory = client_factory
        self.records_per_batch = records_per_batch
        self.grey_hold = grey_hold
        self.interval_s = interval_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.failures = 0
        self.last_error: str | None = None
        self.last_report: SyncReport | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync_once(self) -> SyncReport:
        """Upload every due batch, then fetch the deny and action deltas, on one connection."""
        report = SyncReport()
        with self._client_factory() as client:
            for _ in range(BATCHES_PER_CYCLE_MAX):
                batch = self.journal.next_batch(self.records_per_batch, self.grey_hold)
                if batch is None:
                    break
                answer = client.upload_batch(batch)
                self.journal.acknowledge(batch, duplicate=bool(answer.get("duplicate")))
                report.batches_sent += 1
                report.records_sent += batch.records
                report.duplicates += int(bool(answer.get("duplicate")))
                gaps = answer.get("sequence_gaps")
                if isinstance(gaps, list):
                    report.sequence_gaps = gaps
            for kind in ("deny", "action"):
                self._refresh_list(client, kind)
        versions = self.lists.versions()
        report.deny_version, report.action_version = versions.deny, versions.action
        self.last_report = report
        return report

    def _refresh_list(self, client: ClearingClient, kind: str) -> None:
        versions = self.lists.versions()
        since = versions.deny if kind == "deny" else versions.action
        body = client.fetch_list(kind, since)
        try:
            self.lists.apply(body)
        except ListDeltaRefused:
            # Our version is unknown to the server's deltas: start again from a full list.
            self.lists.apply(client.fetch_list(kind, 0))

    # --- background thread ---------------------------------------------------------------------

    def wake(self) -> None:
        """Ask for a sync soon (from a tap callback: never blocks)."""
        self._wake.set()

    def backoff_s(self) -> float:
        base = min(self.backoff_max_s, self.backoff_initial_s * (2 ** min(self.failures, 30)))
        return base * random.uniform(0.5, 1.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            # Clear before the cycle: a wake that arrives during it triggers the next one.
            self._wake.clear()
            try:
                self.sync_once()
            except TerminalError as error:
                # ServiceUnavailable, a refused upload or list: back off and try again later.
                self.failures += 1
                self.last_error = f"{error.code}: {error.message}"
                delay = self.backoff_s()
            else:
                self.failures = 0
                self.last_error = None
                delay = self.interval_s
            self._wake.wait(timeout=delay)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="onecard-uploader", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
