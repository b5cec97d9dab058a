"""A simulated fleet of bus validators on the sample feed's lines, for tests and the city demo.

Each bus has its own software SAM (own serial), journal, credential, lists and uploader; buses go
offline and online during the day and upload when they can. Cards are software cards tapped
in-process. Randomness comes from a seeded generator: the same seed gives the same day.

    fleet = Fleet(issuer_key_store, load_sample_feed(), Path("var/fleet"), buses=4,
                  clearing_url="http://127.0.0.1:8000", list_public_key=hex)
    for terminal_id, public_key in fleet.credentials(): register them in the clearing registry
    day = fleet.simulate_day(cards, date(2026, 11, 30))
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from cardio.inproc import InProcessTransport
from cardio.keystore import KeyStore
from cardio.softcard import SoftCard
from terminals.client import ClearingClient
from terminals.config import TerminalConfig
from terminals.errors import TerminalError, invariant
from terminals.fares.feed import FareFeed
from terminals.journal import Journal, TapRecord
from terminals.lists import ListStore
from terminals.sam import Psam, SoftwareSam, load_sam_keys, provision_sam_keys
from terminals.signing import TerminalCredential, load_credential, new_credential, write_credential
from terminals.terminal import TapOutcome, TapResult, Validator
from terminals.uploader import SyncReport, Uploader

BUSES_MAX = 999
TAPS_PER_CARD_MAX = 20
TAPS_PER_RUN_MAX = 100_000  # a simulated span of provisioned terminals
SERVICE_START = time(6, 0)
SERVICE_END = time(22, 0)
NO_LIST_KEY = "00" * 32  # a fleet without a clearing service accepts no list at all


def _fixed(moment: datetime) -> datetime:
    return moment


def fleet_terminal_id(number: int) -> str:
    invariant(1 <= number <= BUSES_MAX, "bus number out of range")
    return f"000001{number:06d}"


@dataclass
class Bus:
    terminal_id: str
    route_id: str
    validator: Validator
    journal: Journal
    credential: TerminalCredential
    uploader: Uploader | None
    online: bool = True
    sync_failures: int = 0
    last_error: str | None = None


@dataclass
class BusDay:
    terminal_id: str
    route_id: str
    taps: int = 0
    paid: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    fares_fen: int = 0
    offline_periods: int = 0
    uploads: int = 0
    records_uploaded: int = 0
    torn: int = 0  # taps whose debit answer was lost (grey records)
    recovered: int = 0  # torn taps completed when their card came back to this bus


@dataclass
class FleetDay:
    day: date
    buses: list[BusDay]

    @property
    def taps(self) -> int:
        return sum(b.taps for b in self.buses)

    @property
    def paid(self) -> int:
        return sum(b.paid for b in self.buses)

    @property
    def fares_fen(self) -> int:
        return sum(b.fares_fen for b in self.buses)


class Fleet:
    """N buses on the feed's routes, each with its own SAM, journal and uploader."""

    def __init__(
        self,
        issuer: KeyStore,
        feed: FareFeed,
        data_dir: Path | str,
        buses: int = 4,
        *,
        clearing_url: str | None = None,
        list_public_key: str | None = None,
        seed: int = 0,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`http_transport` lets a caller route the buses' requests (e.g. an in-process app)."""
        invariant(1 <= buses <= BUSES_MAX, f"a fleet has 1..{BUSES_MAX} buses")
        self.feed = feed
        self.data_dir = Path(data_dir)
        self.clearing_url = clearing_url
        self.random = random.Random(seed)
        self.zone = ZoneInfo(feed.timezone)
        routes = sorted(feed.route_network, key=lambda r: (len(r), r))
        invariant(bool(routes), "the feed has no routes with a network")
        self.stops = sorted(feed.stop_areas) or ["stop"]
        self.buses: list[Bus] = []
        for number in range(1, buses + 1):
            terminal_id = fleet_terminal_id(number)
            home = self.data_dir / terminal_id
            home.mkdir(parents=True, exist_ok=True)
            key_path = home / "sam-keys.json"
            keys = (
                load_sam_keys(key_path)
                if key_path.exists()
                else provision_sam_keys(issuer, bytes.fromhex(terminal_id), key_path)
            )
            credential_path = home / "credential.json"
            if credential_path.exists():
                credential = load_credential(credential_path)
            else:
                credential = new_credential(terminal_id)
                write_credential(credential, credential_path)
            sam = SoftwareSam(keys, home / "sam-serial")
            journal = Journal(home / "journal.db", terminal_id)
            journal.reconcile(sam.last_serial)
            lists = ListStore(home / "lists.json", list_public_key or NO_LIST_KEY)
            route = routes[(number - 1) % len(routes)]
            validator = Validator(
                journal,
                Psam(sam),
                feed,
                lists,
                route,
                self.stops[0],
                vehicle_id=f"bus-{number}",
                purchase_key_index=keys.purchase.index,
            )
            uploader = None
            if clearing_url is not None:
                uploader = Uploader(
                    journal,
                    lists,
                    partial(ClearingClient, clearing_url, credential, transport=http_transport),
                    interval_s=60,
                )
            self.buses.append(Bus(terminal_id, route, validator, journal, credential, uploader))

    def credentials(self) -> list[tuple[str, str]]:
        """(terminal id, Ed25519 public key hex) of every bus, to register with the clearing service."""
        return [(bus.terminal_id, bus.credential.public_key_hex) for bus in self.buses]

    def close(self) -> None:
        for bus in self.buses:
            bus.journal.close()

    def sync(self, bus: Bus) -> SyncReport | None:
        """One upload cycle of a bus, if it is online and has a clearing service; never raises."""
        if not bus.online:
            return None
        return _sync(bus)

    def sync_all(self, end_of_day: bool = True) -> list[SyncReport | None]:
        """The depot: every bus online and uploading. At the end of the day a torn tap whose
        card did not come back is uploaded as grey, for clearing to resolve."""
        for bus in self.buses:
            bus.online = True
            if end_of_day and bus.uploader is not None:
                bus.uploader.grey_hold = timedelta(0)
        return [self.sync(bus) for bus in self.buses]

    def simulate_day(
        self,
        cards: Sequence[SoftCard],
        day: date,
        *,
        taps_per_card: tuple[int, int] = (2, 6),
        offline_share: float = 0.3,
        sync_every_taps: int = 10,
        tear_share: float = 0.0,
    ) -> FleetDay:
        """Every card rides a few times on random buses; buses drop offline for random hours;
        with `tear_share`, that share of taps tears (the card leaves during the debit)."""
        low, high = taps_per_card
        invariant(0 <= low <= high <= TAPS_PER_CARD_MAX, "taps per card out of bounds")
        invariant(0.0 <= offline_share <= 1.0, "offline share is a fraction")
        invariant(0.0 <= tear_share <= 1.0, "tear share is a fraction")
        start = datetime.combine(day, SERVICE_START, tzinfo=self.zone)
        span_s = int((datetime.combine(day, SERVICE_END, tzinfo=self.zone) - start).total_seconds())
        rides: list[tuple[datetime, int, int]] = []
        for index in range(len(cards)):
            for _ in range(self.random.randint(low, high)):
                rides.append(
                    (
                        start + timedelta(seconds=self.random.randrange(span_s)),
                        index,
                        self.random.randrange(len(self.buses)),
                    )
                )
        rides.sort()
        reports = {bus.terminal_id: BusDay(bus.terminal_id, bus.route_id) for bus in self.buses}
        transports = [InProcessTransport(card) for card in cards]
        hour = -1
        for moment, card_index, bus_index in rides:
            if moment.hour != hour:  # each hour every bus may lose or regain its network
                hour = moment.hour
                for bus in self.buses:
                    was = bus.online
                    bus.online = self.random.random() >= offline_share
                    if was and not bus.online:
                        reports[bus.terminal_id].offline_periods += 1
            bus = self.buses[bus_index]
            report = reports[bus.terminal_id]
            bus.validator.clock = partial(_fixed, moment)
            bus.validator.move_to(bus.route_id, self.random.choice(self.stops))
            transport = transports[card_index]
            if self.random.random() < tear_share:
                transport.tear_next(0x54)  # the debit reaches the card, its answer does not
            result = bus.validator.tap(transport)
            if not transport.present:
                transport.insert()  # the passenger takes the card back out of the field
            record_tap(report, result)
            if report.taps % sync_every_taps == 0:
                synced = self.sync(bus)
                if synced is not None:
                    report.uploads += synced.batches_sent
                    report.records_uploaded += synced.records_sent
        for bus, synced in zip(self.buses, self.sync_all(), strict=True):
            if synced is not None:
                reports[bus.terminal_id].uploads += synced.batches_sent
                reports[bus.terminal_id].records_uploaded += synced.records_sent
        return FleetDay(day, [reports[bus.terminal_id] for bus in self.buses])

    def records(self) -> dict[str, list[TapRecord]]:
        return {bus.terminal_id: bus.journal.records() for bus in self.buses}


def simulate_day(
    issuer: KeyStore,
    feed: FareFeed,
    cards: Sequence[SoftCard],
    day: date,
    data_dir: Path | str,
    *,
    buses: int = 4,
    clearing_url: str | None = None,
    list_public_key: str | None = None,
    seed: int = 0,
    offline_share: float = 0.3,
    tear_share: float = 0.0,
    http_transport: httpx.BaseTransport | None = None,
) -> tuple[Fleet, FleetDay]:
    """Build a fleet and run one day; the fleet is returned open (call `fleet.close()`).

    With a clearing service, register `fleet.credentials()` first: build the Fleet, register,
    then call `fleet.simulate_day(...)` instead of this shortcut.
    """
    fleet = Fleet(
        issuer,
        feed,
        data_dir,
        buses,
        clearing_url=clearing_url,
        list_public_key=list_public_key,
        seed=seed,
        http_transport=http_transport,
    )
    return fleet, fleet.simulate_day(cards, day, offline_share=offline_share, tear_share=tear_share)


# --- provisioned terminals (`onecard terminal simulate`) -----------------------------------------


def open_bus(config: TerminalConfig, *, http_transport: httpx.BaseTransport | None = None) -> Bus:
    """A provisioned validator (its terminal.toml: SAM key file, credential, journal, pinned list
    key, fare feed, route) with its uploader when it has a clearing URL."""
    keys = load_sam_keys(config.sam_keys)
    credential = load_credential(config.credential)
    feed = config.load_feed()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    sam = SoftwareSam(keys, config.sam_serial_path)
    journal = Journal(config.journal_path, config.terminal_id)
    journal.reconcile(sam.last_serial)
    lists = ListStore(config.lists_path, config.server_public_key)
    stop = config.stop_id or (sorted(feed.stop_areas) or ["stop"])[0]
    validator = Validator(
        journal,
        Psam(sam),
        feed,
        lists,
        config.route_id,
        stop,
        vehicle_id=config.vehicle_id,
        purchase_key_index=keys.purchase.index,
    )
    uploader = None
    if config.clearing_url:
        uploader = Uploader(
            journal,
            lists,
            partial(ClearingClient, config.clearing_url, credential, transport=http_transport),
        )
    return Bus(config.terminal_id, config.route_id, validator, journal, credential, uploader)


def plan_taps(
    taps: int, cards: int, buses: int, start: datetime, end: datetime, seed: int = 0
) -> list[tuple[datetime, int, int]]:
    """`taps` (time, card index, bus index), at random whole seconds of [start, end), in order."""
    invariant(0 <= taps <= TAPS_PER_RUN_MAX, f"0..{TAPS_PER_RUN_MAX} taps a run")
    invariant(cards > 0 and buses > 0, "a run needs cards and buses")
    invariant(start.tzinfo is not None and start < end, "a span runs forwards, aware")
    rng = random.Random(seed)
    span_s = max(1, int((end - start).total_seconds()))
    plan = [
        (
            start + timedelta(seconds=rng.randrange(span_s)),
            rng.randrange(cards),
            rng.randrange(buses),
        )
        for _ in range(taps)
    ]
    plan.sort()
    return plan


def record_tap(report: BusDay, result: TapResult) -> None:
    """Count one tap's outcome in its bus's report."""
    report.taps += 1
    report.torn += int(result.outcome is TapOutcome.TORN)
    report.recovered += len(result.recovered)
    if result.paid and result.record is not None:
        report.paid += 1
        # A forgotten tap-off's maximum fare is a purchase of its own before this tap's.
        report.fares_fen += sum(r.amount_fen for r in result.charged or (result.record,))
    elif result.outcome is not TapOutcome.OK:
        report.refused[result.outcome.value] = report.refused.get(result.outcome.value, 0) + 1


def drive(
    buses: Sequence[Bus],
    cards: Sequence[SoftCard],
    plan: Sequence[tuple[datetime, int, int]],
    *,
    sync_every_taps: int = 50,
    after_tap: Callable[[int], None] | None = None,
    seed: int = 0,
) -> list[BusDay]:
    """Tap `cards` in-process on `buses` as `plan` says (each bus at a random stop of its
    route), uploading through each bus's own uploader before, every `sync_every_taps` taps and
    after; `after_tap(card index)` runs after each tap (e.g. to save the card)."""
    invariant(sync_every_taps > 0, "sync at least every N taps")
    rng = random.Random(seed)
    reports = [BusDay(bus.terminal_id, bus.route_id) for bus in buses]
    stops = {id(bus): sorted(bus.validator.feed.stop_areas) or ["stop"] for bus in buses}

    def sync(index: int) -> None:
        synced = _sync(buses[index])
        if synced is not None:
            reports[index].uploads += synced.batches_sent
            reports[index].records_uploaded += synced.records_sent

    for index in range(len(buses)):
        sync(index)  # the lists first: taps are decided under the current deny list
    transports = [InProcessTransport(card) for card in cards]
    for moment, card_index, bus_index in plan:
        bus = buses[bus_index]
        bus.validator.clock = partial(_fixed, moment)
        bus.validator.move_to(bus.route_id, rng.choice(stops[id(bus)]))
        record_tap(reports[bus_index], bus.validator.tap(transports[card_index]))
        if after_tap is not None:
            after_tap(card_index)
        if reports[bus_index].taps % sync_every_taps == 0:
            sync(bus_index)
    for index, bus in enumerate(buses):
        if bus.uploader is not None:
            bus.uploader.grey_hold = timedelta(0)  # the day is over: a torn tap goes up grey
        sync(index)
    return reports


def _sync(bus: Bus) -> SyncReport | None:
    if bus.uploader is None:
        return None
    try:
        report = bus.uploader.sync_once()
    except TerminalError as error:
        bus.sync_failures += 1
        bus.last_error = f"{error.code}: {error.message}"
        return None
    bus.last_error = None
    return report
