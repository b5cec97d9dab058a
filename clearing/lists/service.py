"""The deny list and the action list: changes, signed versioned deltas, fetches and coverage.

Every change takes a new version of its list; terminals fetch the net change since the
version they hold, signed with the server key, and each fetch is recorded so the time for a
lost card to reach the whole fleet can be measured. Never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.db.base import utc_now
from clearing.errors import Conflict, InvalidRequest, NotFound
from clearing.lists import repository
from clearing.lists.deltas import net_delta
from clearing.lists.models import ListKind, ListOp, PendingLoad, PendingLoadState
from clearing.lists.signing import sign_body
from clearing.registry import repository as registry_repository

# A delta longer than this is sent as the whole list instead (it is then no bigger).
DELTA_CHANGES_MAX = 20_000
CHANGES_PER_VERSION_MAX = 10_000
PENDING_LOAD_EXPIRY_DEFAULT = timedelta(days=30)
AMOUNT_FEN_MAX = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Coverage:
    """How far one deny-list version has reached the active fleet."""

    version: int
    created_at: datetime | None
    terminals_active: int
    terminals_reached: int
    reached_all_at: datetime | None  # when the last active terminal first fetched it
    terminals_behind: tuple[str, ...]

    @property
    def seconds_to_fleet(self) -> float | None:
        if self.created_at is None or self.reached_all_at is None:
            return None
        return (self.reached_all_at - self.created_at).total_seconds()


async def change_list(
    session: AsyncSession,
    kind: ListKind,
    changes: list[tuple[str, ListOp]],
    reason: str,
    now: datetime | None = None,
) -> int:
    """Apply additions/removals that actually change the list; the new (or current) version."""
    if len(changes) > CHANGES_PER_VERSION_MAX:
        raise InvalidRequest(f"at most {CHANGES_PER_VERSION_MAX} changes per list version")
    keys = [key for key, _ in changes]
    present = await repository.listed_keys(session, kind, keys)
    effective: list[tuple[str, ListOp]] = []
    for key, op in changes:
        if (op is ListOp.ADD) == (key in present):
            continue  # already in that state
        effective.append((key, op))
        if op is ListOp.ADD:
            present.add(key)
        else:
            present.discard(key)
    if not effective:
        return await repository.head_version(session, kind)
    version = await repository.bump_version(session, kind)
    await repository.add_version(session, kind, version, now or utc_now(), reason[:200])
    await repository.add_changes(session, kind, version, effective)
    return version


async def deny_card(session: AsyncSession, card_no: str, reason: str) -> int:
    return await change_list(session, ListKind.DENY, [(card_no, ListOp.ADD)], reason)


async def allow_card(session: AsyncSession, card_no: str, reason: str) -> int:
    return await change_list(session, ListKind.DENY, [(card_no, ListOp.REMOVE)], reason)


async def is_denied(session: AsyncSession, card_no: str) -> bool:
    return card_no in await repository.listed_keys(session, ListKind.DENY, [card_no])


async def add_pending_load(
    session: AsyncSession,
    *,
    load_id: str,
    card_no: str,
    amount_fen: int,
    source: str,
    expires_at: datetime | None = None,
) -> PendingLoad:
    """Put money paid for a card on the action list; the same load_id twice is one load.

    The caller has already credited `card-pending:<card_no>`; the engine confirms delivery
    (`mark_pending_load`) when the load's record clears.
    """
    if not 0 < amount_fen <= AMOUNT_FEN_MAX:
        raise InvalidRequest("a pending load's amount_fen must be 1 … 2^32-1")
    existing = await repository.pending_load(session, load_id)
    if existing is not None:
        if existing.card_no != card_no or existing.amount_fen != amount_fen:
            raise Conflict(f"pending load {load_id} exists with a different card or amount")
        return existing
    card = await registry_repository.card_by_no(session, card_no)
    if card is None:
        raise NotFound(f"no card {card_no}")
    now = utc_now()
    load = PendingLoad(
        load_id=load_id,
        card_no=card_no,
        amount_fen=amount_fen,
        state=PendingLoadState.PENDING,
        source=source,
        created_at=now,
        expires_at=expires_at or now + PENDING_LOAD_EXPIRY_DEFAULT,
        state_changed_at=now,
    )
    session.add(load)
    await session.flush()
    await change_list(session, ListKind.ACTION, [(load_id, ListOp.ADD)], f"load {load_id}", now)
    return load


async def mark_pending_load(
    session: AsyncSession, load_id: str, state: PendingLoadState
) -> PendingLoad:
    """End a pending load (delivered, expired or cancelled): it leaves the action list."""
    if state is PendingLoadState.PENDING:
        raise InvalidRequest("a pending load can only move out of the pending state")
    load = await repository.pending_load(session, load_id)
    if load is None:
        raise NotFound(f"no pending load {load_id}")
    if load.state is state:
        return load
    if load.state is not PendingLoadState.PENDING:
        raise Conflict(f"pending load {load_id} is already {load.state.value}")
    now = utc_now()
    load.state = state
    load.state_changed_at = now
    await session.flush()
    await change_list(
        session, ListKind.ACTION, [(load_id, ListOp.REMOVE)], f"load {load_id} {state.value}", now
    )
    return load


async def pending_loads_to_expire(
    session: AsyncSession, now: datetime, limit: int = 1000
) -> list[PendingLoad]:
    return await repository.pending_loads_due_to_expire(session, now, limit)


async def signed_delta(
    session: AsyncSession,
    key: Ed25519PrivateKey,
    *,
    kind: ListKind,
    terminal_id: str,
    since: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The signed body a terminal at version `since` needs, and record that it fetched it."""
    now = now or utc_now()
    version = await repository.head_version(session, kind)
    full = since <= 0 or since > version
    if not full and await repository.change_count_after(session, kind, since) > DELTA_CHANGES_MAX:
        full = True
    start = 0 if full else since
    delta = net_delta(await repository.changes_after(session, kind, start, version))
    added: list[Any] = list(delta.added)
    if kind is ListKind.ACTION:
        loads = {
            load.load_id: load
            for load in await repository.pending_loads_by_id(session, list(delta.added))
        }
        added = [
            {
                "load_id": load_id,
                "card_no": loads[load_id].card_no,
                "amount_fen": loads[load_id].amount_fen,
                "expires_at": _rfc3339(loads[load_id].expires_at),
            }
            for load_id in delta.added
        ]
    body: dict[str, Any] = {
        "list": kind.value,
        "since": 0 if full else since,
        "version": version,
        "added": added,
        "removed": [] if full else list(delta.removed),
        "full": full,
        "signed_at": _rfc3339(now),
    }
    body["signature"] = sign_body(key, body)
    await repository.record_fetch(session, terminal_id, kind, since, version, now)
    return body


async def deny_list_coverage(session: AsyncSession, version: int | None = None) -> Coverage:
    """How many active terminals hold deny-list `version` (default: the current one), since when."""
    head = await repository.head_version(session, ListKind.DENY)
    version = head if version is None else version
    if not 0 <= version <= head:
        raise NotFound(f"deny list version {version} does not exist (current: {head})")
    created_at = await repository.version_created_at(session, ListKind.DENY, version)
    active = await registry_repository.active_terminal_ids(session)
    reached = await repository.first_fetch_at_or_after(session, ListKind.DENY, version, active)
    behind = tuple(sorted(set(active) - set(reached)))
    reached_all_at = max(reached.values()) if reached and not behind else None
    return Coverage(version, created_at, len(active), len(reached), reached_all_at, behind)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
