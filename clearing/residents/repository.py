"""Every query of residents: accounts, refresh tokens, card links, failed tries, and what a
resident may read of their cards.

Cleared taps (the engine's) and pending loads (the action list's) are read by SQL over their
tables, as insight reads cleared taps: this domain sits below the engine and beside the lists,
so it never imports them. Only the columns named here are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, column, select, table, update
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.auth.models import ApiToken
from clearing.db.base import UtcDateTime
from clearing.registry.models import Card, CardEvent, CardEventKind
from clearing.residents.models import AttemptKind, CardLink, FailedAttempt, RefreshToken, Resident

HISTORY_PAGE_MAX = 100

_cleared_taps = table(
    "cleared_taps",
    column("card_no", String(16)),
    column("card_counter", Integer()),
    column("participant_code", String(32)),
    column("kind", String(16)),
    column("route_id", String(64)),
    column("amount_fen", BigInteger()),
    column("balance_before_fen", BigInteger()),
    column("balance_after_fen", BigInteger()),
    column("load_id", String(64)),
    column("occurred_at", UtcDateTime()),
    column("tap_record_id", BigInteger()),
)

# the stop a tap was made at (the terminal's record; a load at a kiosk or a metro gate: none)
_tap_records = table("tap_records", column("id", BigInteger()), column("stop_id", String(64)))

_pending_loads = table(
    "pending_loads",
    column("load_id", String(64)),
    column("card_no", String(16)),
    column("amount_fen", BigInteger()),
    column("state", String(16)),
    column("source", String(32)),
    column("created_at", UtcDateTime()),
    column("expires_at", UtcDateTime()),
)

PENDING = "pending"  # clearing.lists.models.PendingLoadState.PENDING's stored value
LOAD = "load"  # clearing.records.TapKind.LOAD's stored value


@dataclass(frozen=True, slots=True)
class ClearedTapRow:
    card_counter: int
    kind: str
    participant_code: str
    route_id: str | None
    amount_fen: int
    balance_before_fen: int
    balance_after_fen: int
    load_id: str | None
    occurred_at: datetime
    stop_id: str | None = None


@dataclass(frozen=True, slots=True)
class PendingLoadRow:
    load_id: str
    amount_fen: int
    source: str
    created_at: datetime
    expires_at: datetime


# -- accounts ----------------------------------------------------------------------------------


async def resident_by_id(session: AsyncSession, resident_id: str) -> Resident | None:
    return await session.get(Resident, resident_id)


async def resident_by_login(
    session: AsyncSession, login: str, *, for_update: bool = False
) -> Resident | None:
    """The account with this (normalised) login; `for_update` locks it for the transaction
    (PostgreSQL; SQLite's writers take turns anyway), so its tries are counted one at a time."""
    query = select(Resident).where(Resident.login == login)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def lock_resident(session: AsyncSession, resident_id: str) -> None:
    """Take the resident's row lock: concurrent tries of one resident are counted in turn."""
    await session.execute(select(Resident.id).where(Resident.id == resident_id).with_for_update())


async def list_residents(session: AsyncSession, *, limit: int, offset: int) -> list[Resident]:
    query = select(Resident).order_by(Resident.created_at, Resident.id).limit(limit).offset(offset)
    return list((await session.execute(query)).scalars())


# -- refresh tokens ----------------------------------------------------------------------------


async def refresh_by_hash(session: AsyncSession, token_sha256: str) -> RefreshToken | None:
    """The refresh token as the database has it now (re-read even if the session holds it)."""
    query = (
        select(RefreshToken)
        .where(RefreshToken.token_sha256 == token_sha256)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def refresh_by_access_token(
    session: AsyncSession, access_token_id: int
) -> RefreshToken | None:
    query = select(RefreshToken).where(RefreshToken.access_token_id == access_token_id)
    return (await session.execute(query)).scalar_one_or_none()


async def claim_refresh(
    session: AsyncSession, refresh_id: int, now: datetime, grace_until: datetime | None = None
) -> bool:
    """Mark a refresh token used (with its grace, if any); False if it already was (two uses
    racing: one wins).

    One UPDATE … WHERE used_at IS NULL: PostgreSQL makes the second wait for the first's row
    lock and then match nothing; SQLite's writers take turns."""
    result = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == refresh_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(used_at=now, grace_until=grace_until)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def newest_of_family(session: AsyncSession, family_id: str) -> RefreshToken | None:
    """The sign-in's latest refresh token (the one its browser holds now, if all went well)."""
    query = (
        select(RefreshToken)
        .where(RefreshToken.family_id == family_id)
        .order_by(RefreshToken.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def close_grace(session: AsyncSession, family_id: str) -> None:
    """No used refresh token of this sign-in is accepted again, not even by a parallel load."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.grace_until.is_not(None))
        .values(grace_until=None)
        .execution_options(synchronize_session=False)
    )


async def revoke_families(session: AsyncSession, family_ids: Sequence[str], now: datetime) -> int:
    """Revoke every refresh token of these families and every access token issued with them
    (two UPDATEs however long the families grew); the number of refresh tokens revoked."""
    families = list(family_ids)
    access_ids = (
        select(RefreshToken.access_token_id)
        .where(RefreshToken.family_id.in_(families), RefreshToken.access_token_id.is_not(None))
        .scalar_subquery()
    )
    await session.execute(
        update(ApiToken)
        .where(ApiToken.id.in_(access_ids), ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id.in_(families), RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def open_families(session: AsyncSession, resident_id: str) -> list[str]:
    query = (
        select(RefreshToken.family_id)
        .where(RefreshToken.resident_id == resident_id, RefreshToken.revoked_at.is_(None))
        .distinct()
    )
    return list((await session.execute(query)).scalars())


# -- failed tries ------------------------------------------------------------------------------


async def failures_since(
    session: AsyncSession,
    kind: AttemptKind,
    since: datetime,
    *,
    resident_id: str | None = None,
    card_no: str | None = None,
) -> list[datetime]:
    query = select(FailedAttempt.at).where(FailedAttempt.kind == kind, FailedAttempt.at > since)
    if resident_id is not None:
        query = query.where(FailedAttempt.resident_id == resident_id)
    if card_no is not None:
        query = query.where(FailedAttempt.card_no == card_no)
    return list((await session.execute(query.order_by(FailedAttempt.at))).scalars())


# -- card links --------------------------------------------------------------------------------


async def open_link(session: AsyncSession, card_no: str) -> CardLink | None:
    query = select(CardLink).where(CardLink.card_no == card_no, CardLink.unlinked_at.is_(None))
    return (await session.execute(query)).scalar_one_or_none()


async def linked_cards(session: AsyncSession, resident_id: str) -> list[tuple[CardLink, Card]]:
    query = (
        select(CardLink, Card)
        .join(Card, Card.card_no == CardLink.card_no)
        .where(CardLink.resident_id == resident_id, CardLink.unlinked_at.is_(None))
        .order_by(CardLink.linked_at, CardLink.id)
    )
    return [(link, card) for link, card in (await session.execute(query)).all()]


async def linked_card(
    session: AsyncSession, resident_id: str, card_no: str
) -> tuple[CardLink, Card] | None:
    query = (
        select(CardLink, Card)
        .join(Card, Card.card_no == CardLink.card_no)
        .where(
            CardLink.resident_id == resident_id,
            CardLink.card_no == card_no,
            CardLink.unlinked_at.is_(None),
        )
    )
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def card_by_no(session: AsyncSession, card_no: str) -> Card | None:
    return await session.get(Card, card_no)


# -- what clearing knows of a card -------------------------------------------------------------


def _tap(row: object) -> ClearedTapRow:
    return ClearedTapRow(
        card_counter=row.card_counter,  # type: ignore[attr-defined]
        kind=row.kind,  # type: ignore[attr-defined]
        participant_code=row.participant_code,  # type: ignore[attr-defined]
        route_id=row.route_id,  # type: ignore[attr-defined]
        amount_fen=row.amount_fen,  # type: ignore[attr-defined]
        balance_before_fen=row.balance_before_fen,  # type: ignore[attr-defined]
        balance_after_fen=row.balance_after_fen,  # type: ignore[attr-defined]
        load_id=row.load_id,  # type: ignore[attr-defined]
        occurred_at=row.occurred_at,  # type: ignore[attr-defined]
        stop_id=row.stop_id,  # type: ignore[attr-defined]
    )


def _newest_first(card_no: str):  # type: ignore[no-untyped-def]
    c = _cleared_taps.c
    return (
        select(_cleared_taps, _tap_records.c.stop_id)
        .outerjoin(_tap_records, _tap_records.c.id == c.tap_record_id)
        .where(c.card_no == card_no)
        .order_by(c.card_counter.desc(), c.occurred_at.desc())
    )


async def cleared_taps(
    session: AsyncSession, card_no: str, *, limit: int, offset: int
) -> list[ClearedTapRow]:
    """The card's cleared taps and loads, newest (highest card counter) first."""
    query = _newest_first(card_no).limit(min(limit, HISTORY_PAGE_MAX)).offset(offset)
    return [_tap(row) for row in (await session.execute(query)).all()]


async def last_cleared_tap(session: AsyncSession, card_no: str) -> ClearedTapRow | None:
    row = (await session.execute(_newest_first(card_no).limit(1))).first()
    return None if row is None else _tap(row)


async def last_cleared_load(session: AsyncSession, card_no: str) -> ClearedTapRow | None:
    query = _newest_first(card_no).where(_cleared_taps.c.kind == LOAD).limit(1)
    row = (await session.execute(query)).first()
    return None if row is None else _tap(row)


async def issued_amount_fen(session: AsyncSession, card_no: str) -> int | None:
    """Deposit plus first load paid at issue (the registry's `issued` event), if recorded."""
    query = (
        select(CardEvent.amount_fen)
        .where(CardEvent.card_no == card_no, CardEvent.kind == CardEventKind.ISSUED)
        .order_by(CardEvent.id)
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def pending_loads(
    session: AsyncSession, card_nos: Sequence[str]
) -> dict[str, list[PendingLoadRow]]:
    """Loads paid and on the action list, not yet written onto these cards, oldest first."""
    c = _pending_loads.c
    query = (
        select(_pending_loads)
        .where(c.card_no.in_(list(card_nos)), c.state == PENDING)
        .order_by(c.created_at, c.load_id)
    )
    found: dict[str, list[PendingLoadRow]] = {card_no: [] for card_no in card_nos}
    for row in (await session.execute(query)).all():
        found[row.card_no].append(
            PendingLoadRow(row.load_id, row.amount_fen, row.source, row.created_at, row.expires_at)
        )
    return found
