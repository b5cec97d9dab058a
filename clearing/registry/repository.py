"""Every query of the registry: participants, terminals, cards, card events, replacements."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clearing.registry.models import (
    Card,
    CardEvent,
    CardReplacement,
    Participant,
    ReplacementState,
    Terminal,
    TerminalStatus,
)

PAGE_MAX = 500


async def participant_by_code(session: AsyncSession, code: str) -> Participant | None:
    result = await session.execute(select(Participant).where(Participant.code == code))
    return result.scalar_one_or_none()


async def participant_by_id(session: AsyncSession, participant_id: int) -> Participant | None:
    return await session.get(Participant, participant_id)


async def list_participants(
    session: AsyncSession, *, only_id: int | None, limit: int, offset: int
) -> list[Participant]:
    query = select(Participant).order_by(Participant.id).limit(min(limit, PAGE_MAX)).offset(offset)
    if only_id is not None:
        query = query.where(Participant.id == only_id)
    return list((await session.execute(query)).scalars())


async def terminal_by_id(session: AsyncSession, terminal_id: str) -> Terminal | None:
    return await session.get(Terminal, terminal_id)


async def terminal_by_public_key(session: AsyncSession, public_key: str) -> Terminal | None:
    """The terminal holding this Ed25519 public key (lower-case hex), if any."""
    query = select(Terminal).where(Terminal.public_key == public_key.lower()).limit(1)
    return (await session.execute(query)).scalars().first()


async def list_terminals(
    session: AsyncSession, *, participant_id: int | None, limit: int, offset: int
) -> list[Terminal]:
    query = (
        select(Terminal).order_by(Terminal.terminal_id).limit(min(limit, PAGE_MAX)).offset(offset)
    )
    if participant_id is not None:
        query = query.where(Terminal.participant_id == participant_id)
    return list((await session.execute(query)).scalars())


async def active_terminal_ids(session: AsyncSession) -> list[str]:
    result = await session.execute(
        select(Terminal.terminal_id).where(Terminal.status == TerminalStatus.ACTIVE)
    )
    return list(result.scalars())


async def card_by_no(session: AsyncSession, card_no: str) -> Card | None:
    return await session.get(Card, card_no)


async def existing_card_nos(session: AsyncSession, card_nos: list[str]) -> set[str]:
    result = await session.execute(select(Card.card_no).where(Card.card_no.in_(card_nos)))
    return set(result.scalars())


async def card_for_update(session: AsyncSession, card_no: str) -> Card | None:
    result = await session.execute(
        select(Card).where(Card.card_no == card_no).with_for_update(key_share=True)
    )
    return result.scalar_one_or_none()


async def list_cards(
    session: AsyncSession, *, holder_id: str | None, limit: int, offset: int
) -> list[Card]:
    query = select(Card).order_by(Card.card_no).limit(min(limit, PAGE_MAX)).offset(offset)
    if holder_id is not None:
        query = query.where(Card.holder_id == holder_id)
    return list((await session.execute(query)).scalars())


async def card_events(session: AsyncSession, card_no: str) -> list[CardEvent]:
    result = await session.execute(
        select(CardEvent).where(CardEvent.card_no == card_no).order_by(CardEvent.id)
    )
    return list(result.scalars())


async def replacement_of(session: AsyncSession, old_card_no: str) -> CardReplacement | None:
    return await session.get(CardReplacement, old_card_no)


async def waiting_replacements(session: AsyncSession, limit: int) -> list[CardReplacement]:
    result = await session.execute(
        select(CardReplacement)
        .where(CardReplacement.state == ReplacementState.WAITING)
        .order_by(CardReplacement.requested_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(result.scalars())
