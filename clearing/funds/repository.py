"""Every query of clearing.funds: the funds' bank details in the registry. Only SQL."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clearing.funds.receipts import FundPayer
from clearing.registry.models import Participant, ParticipantKind

participants = cast(Table, Participant.__table__)
FUND_KINDS = (ParticipantKind.INSURER, ParticipantKind.SUBSIDY_FUND)


async def fund_payers(conn: AsyncConnection) -> list[FundPayer]:
    """Insurer and subsidy fund participants that have a scheme, by code."""
    rows = await conn.execute(
        select(
            participants.c.code,
            participants.c.name,
            participants.c.kind,
            participants.c.scheme,
            participants.c.bank_account,
        )
        .where(
            participants.c.kind.in_([k.value for k in FUND_KINDS]),
            participants.c.scheme.is_not(None),
        )
        .order_by(participants.c.code)
    )
    return [
        FundPayer(code, name, ParticipantKind(kind), scheme, bank_account)
        for code, name, kind, scheme, bank_account in rows
    ]
