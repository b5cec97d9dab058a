"""Read-only access to the ledger: accounts, balances (now and as of a time), transfers, history.

Reconciliation imports this module only; it never writes (an import contract forbids the writing
modules `ledger.writer` and `ledger.backends` to reconciliation). Every page is bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    and_,
    any_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql import array as pg_array
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.errors import InvalidArgumentError, PageTooLargeError
from ledger.pgconn import asyncpg_of
from ledger.tables import (
    TRANSFER_SELECT,
    accounts,
    clock,
    from_uuid,
    ledgers,
    to_uuid,
    transfer_from_row,
    transfers,
)
from ledger.types import (
    ID_MAX,
    PAGE_DEFAULT,
    PAGE_MAX,
    Account,
    AccountBalance,
    AccountEntry,
    AccountFlags,
    AccountState,
    LedgerSpec,
    Transfer,
    TransferFlags,
)

_ACCOUNT_COLUMNS = (
    accounts.c.id,
    accounts.c.ledger,
    accounts.c.code,
    accounts.c.name,
    accounts.c.flags,
    accounts.c.user_data_128,
    accounts.c.user_data_64,
    accounts.c.user_data_32,
    accounts.c.debits_pending,
    accounts.c.debits_posted,
    accounts.c.credits_pending,
    accounts.c.credits_posted,
    accounts.c.timestamp,
)
_BALANCE_SIDES = {
    True: ("dr_debits_pending", "dr_debits_posted", "dr_credits_pending", "dr_credits_posted"),
    False: ("cr_debits_pending", "cr_debits_posted", "cr_credits_pending", "cr_credits_posted"),
}


@dataclass(frozen=True, slots=True)
class TransferPage:
    """One page of an account's transfers; pass `next_after` as `after` for the next page."""

    transfers: list[Transfer]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: list[AccountEntry]
    next_after: int | None


# The flags of stored accounts, made once per value (an IntFlag call costs a microsecond).
_ACCOUNT_FLAGS: dict[int, AccountFlags] = {}


def _account_flags(value: int) -> AccountFlags:
    flags = _ACCOUNT_FLAGS.get(value)
    if flags is None:
        flags = _ACCOUNT_FLAGS[value] = AccountFlags(value)
    return flags


def _account_state(row: Sequence[Any]) -> AccountState:
    account = Account(
        id=from_uuid(row[0]),
        ledger=row[1],
        code=row[2],
        name=row[3],
        flags=_account_flags(row[4]),
        user_data_128=from_uuid(row[5]),
        user_data_64=row[6],
        user_data_32=row[7],
    )
    balance = AccountBalance(row[8], row[9], row[10], row[11], row[12])
    return AccountState(account=account, balance=balance, timestamp=row[12])


# The accounts of an array of ids, sent straight to asyncpg: the clearing engine reads ~8,000 a
# chunk, and SQLAlchemy's row handling (and a uuid.UUID made per id) cost several times what
# PostgreSQL spends on them (measured on bench/clearing.py: ~20 % of clearing's CPU).
_PG_LOOKUP_ACCOUNTS = (
    f"SELECT {', '.join(column.name for column in _ACCOUNT_COLUMNS)} FROM ledger_accounts"
    " WHERE id = ANY($1::uuid[])"
)


# What each of an array of accounts may still spend, in the order asked (NULL: no such account):
# the clearing engine's shadow balances, one number per card, with no row or id made in Python.
_PG_CREDITS_AVAILABLE = (
    "SELECT a.credits_posted - a.debits_posted - a.debits_pending"
    " FROM unnest($1::uuid[]) WITH ORDINALITY AS k(id, n)"
    " LEFT JOIN ledger_accounts AS a ON a.id = k.id ORDER BY k.n"
)


async def _pg_by_ids(conn: AsyncConnection, sql: str, ids: Iterable[int]) -> list[Any]:
    """Rows of `sql`, whose one parameter is an array of ids: one array, not an IN list of
    thousands; ids as 32 hex digits, which asyncpg parses in C."""
    driver = await asyncpg_of(conn)
    return list(await driver.fetch(sql, [f"{i:032x}" for i in ids]))


def _check_limit(limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidArgumentError(f"limit must be an int >= 1, got {limit!r}")
    if limit > PAGE_MAX:
        raise PageTooLargeError(f"limit {limit} exceeds PAGE_MAX={PAGE_MAX}: page through results")


def _check_ids(ids: Sequence[int]) -> None:
    if len(ids) > PAGE_MAX:
        raise PageTooLargeError(f"{len(ids)} ids exceed PAGE_MAX={PAGE_MAX}: ask in pages")
    for i in ids:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 < i < ID_MAX:
            raise InvalidArgumentError(f"malformed id {i!r}: ids are ints in 1 .. 2**128-2")


class LedgerReader:
    """Read-only queries. Each method takes an optional caller-owned connection (`conn=`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def _connection(self, conn: AsyncConnection | None) -> AsyncIterator[AsyncConnection]:
        if conn is not None:
            yield conn
            return
        async with self.engine.connect() as own:
            yield own

    async def lookup_ledgers(self, *, conn: AsyncConnection | None = None) -> list[LedgerSpec]:
        async with self._connection(conn) as c:
            rows = await c.execute(
                select(ledgers.c.id, ledgers.c.name, ledgers.c.currency, ledgers.c.scale).order_by(
                    ledgers.c.id
                )
            )
            return [LedgerSpec(id=r[0], name=r[1], code=r[2], scale=r[3]) for r in rows]

    async def lookup_accounts(
        self, ids: Sequence[int], *, conn: AsyncConnection | None = None
    ) -> list[AccountState]:
        """The accounts found, in the order asked (unknown ids are left out, as TigerBeetle)."""
        _check_ids(ids)
        if not ids:
            return []
        async with self._connection(conn) as c:
            if c.dialect.name == "postgresql":
                rows = await _pg_by_ids(c, _PG_LOOKUP_ACCOUNTS, set(ids))
            else:
                wanted = [to_uuid(i) for i in set(ids)]
                rows = await c.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.id.in_(wanted)))
            found = {s.id: s for s in map(_account_state, rows)}
        return [found[i] for i in ids if i in found]

    async def credits_available(
        self, ids: Sequence[int], *, conn: AsyncConnection | None = None
    ) -> list[int | None]:
        """What each account may still spend (`AccountBalance.credit_available`), in the order
        asked; None for an id with no account. The same numbers as `lookup_accounts`, without
        an `AccountState` made per account: for callers that read thousands at once."""
        _check_ids(ids)
        if not ids:
            return []
        async with self._connection(conn) as c:
            if c.dialect.name == "postgresql":
                return [r[0] for r in await _pg_by_ids(c, _PG_CREDITS_AVAILABLE, ids)]
            found = {
                s.id: s.balance.credit_available for s in await self.lookup_accounts(ids, conn=c)
            }
        return [found.get(i) for i in ids]

    async def lookup_accounts_by_name(
        self, names: Sequence[str], *, conn: AsyncConnection | None = None
    ) -> list[AccountState]:
        if len(names) > PAGE_MAX:
            raise PageTooLargeError(f"{len(names)} names exceed PAGE_MAX={PAGE_MAX}")
        if not names:
            return []
        async with self._connection(conn) as c:
            rows = await c.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.name.in_(names)))
            found = {s.name: s for s in map(_account_state, rows)}
        return [found[n] for n in names if n in found]

    async def list_accounts(
        self,
        *,
        ledger: int | None = None,
        name_prefix: str | None = None,
        limit: int = PAGE_DEFAULT,
        after_name: str | None = None,
        conn: AsyncConnection | None = None,
    ) -> list[AccountState]:
        """Accounts ordered by name (optionally of one ledger, or names with a prefix)."""
        _check_limit(limit)
        query = select(*_ACCOUNT_COLUMNS).order_by(accounts.c.name).limit(limit)
        if ledger is not None:
            query = query.where(accounts.c.ledger == ledger)
        if name_prefix:
            query = query.where(
                accounts.c.name >= name_prefix, accounts.c.name < name_prefix + "\U0010ffff"
            )
        if after_name is not None:
            query = query.where(accounts.c.name > after_name)
        async with self._connection(conn) as c:
            return [_account_state(r) for r in await c.execute(query)]

    async def lookup_transfers(
        self, ids: Sequence[int], *, conn: AsyncConnection | None = None
    ) -> list[Transfer]:
        _check_ids(ids)
        if not ids:
            return []
        async with self._connection(conn) as c:
            rows = await c.execute(
                select(*[transfers.c[n] for n in TRANSFER_SELECT]).where(
                    transfers.c.id.in_([to_uuid(i) for i in set(ids)])
                )
            )
            found = {t.id: t for t in map(transfer_from_row, rows)}
        return [found[i] for i in ids if i in found]

    def _account_query(
        self,
        account_id: int,
        *,
        since: int | None,
        until: int | None,
        after: int | None,
        limit: int,
        extra: Sequence[Any] = (),
    ) -> Any:
        _check_ids([account_id])
        _check_limit(limit)
        aid = to_uuid(account_id)
        query = (
            select(*[transfers.c[n] for n in TRANSFER_SELECT], *extra)
            .where(or_(transfers.c.debit_account_id == aid, transfers.c.credit_account_id == aid))
            .order_by(transfers.c.timestamp)
            .limit(limit)
        )
        if since is not None:
            query = query.where(transfers.c.timestamp >= since)
        if until is not None:
            query = query.where(transfers.c.timestamp < until)
        if after is not None:
            query = query.where(transfers.c.timestamp > after)
        return query

    async def get_account_transfers(
        self,
        account_id: int,
        *,
        since: int | None = None,
        until: int | None = None,
        after: int | None = None,
        limit: int = PAGE_DEFAULT,
        conn: AsyncConnection | None = None,
    ) -> TransferPage:
        """Transfers touching the account in [since, until), oldest first, after the cursor."""
        query = self._account_query(account_id, since=since, until=until, after=after, limit=limit)
        async with self._connection(conn) as c:
            found = [transfer_from_row(r) for r in await c.execute(query)]
        next_after = found[-1].timestamp if len(found) == limit else None
        return TransferPage(found, next_after)

    async def get_account_history(
        self,
        account_id: int,
        *,
        since: int | None = None,
        until: int | None = None,
        after: int | None = None,
        limit: int = PAGE_DEFAULT,
        conn: AsyncConnection | None = None,
    ) -> HistoryPage:
        """Every entry of the account with its four balances before and after it."""
        balance_columns = [transfers.c[n] for side in (True, False) for n in _BALANCE_SIDES[side]]
        query = self._account_query(
            account_id, since=since, until=until, after=after, limit=limit, extra=balance_columns
        )
        async with self._connection(conn) as c:
            rows = list(await c.execute(query))
            if not rows:
                return HistoryPage([], None)
            before = await self._balance_before(c, account_id, rows[0][14])
        entries = []
        width = len(TRANSFER_SELECT)
        for row in rows:
            t = transfer_from_row(row)
            is_debit = t.debit_account_id == account_id
            values = row[width : width + 4] if is_debit else row[width + 4 : width + 8]
            after_balance = AccountBalance(*values, t.timestamp)
            entries.append(AccountEntry(t, account_id, is_debit, before, after_balance))
            before = after_balance
        next_after = entries[-1].transfer.timestamp if len(entries) == limit else None
        return HistoryPage(entries, next_after)

    async def _balance_before(self, c: AsyncConnection, account_id: int, at: int) -> AccountBalance:
        """The account's balances after its last entry strictly before ledger timestamp `at`."""
        aid = to_uuid(account_id)
        best: AccountBalance = AccountBalance()
        for is_debit, column in (
            (True, transfers.c.debit_account_id),
            (False, transfers.c.credit_account_id),
        ):
            names = _BALANCE_SIDES[is_debit]
            row = (
                await c.execute(
                    select(transfers.c.timestamp, *[transfers.c[n] for n in names])
                    .where(column == aid, transfers.c.timestamp < at)
                    .order_by(transfers.c.timestamp.desc())
                    .limit(1)
                )
            ).first()
            if row is not None and row[0] > best.timestamp:
                best = AccountBalance(row[1], row[2], row[3], row[4], row[0])
        return best

    async def get_balance_as_of(
        self, account_id: int, at: int, *, conn: AsyncConnection | None = None
    ) -> AccountBalance | None:
        """Balances as recorded at ledger timestamp `at` (inclusive); None if no such account.

        O(log n): read from the balances stored on the account's last entry up to `at`.
        """
        _check_ids([account_id])
        async with self._connection(conn) as c:
            exists = (
                await c.execute(select(accounts.c.id).where(accounts.c.id == to_uuid(account_id)))
            ).first()
            if exists is None:
                return None
            return await self._balance_before(c, account_id, at + 1)

    async def get_effective_balance_as_of(
        self, account_id: int, at: int, *, conn: AsyncConnection | None = None
    ) -> AccountBalance | None:
        """Balances counting every transfer whose effective time (effective_at if back-dated,
        else its timestamp) is at or before `at`, including postings recorded later."""
        _check_ids([account_id])
        aid = to_uuid(account_id)
        pending = transfers.alias("pending")
        when = func.coalesce(transfers.c.effective_at, transfers.c.timestamp)
        flags = transfers.c.flags
        is_pending = (flags.op("&")(int(TransferFlags.PENDING))) != 0
        resolves = transfers.c.pending_id.is_not(None)
        is_post = (flags.op("&")(int(TransferFlags.POST_PENDING_TRANSFER))) != 0
        amount = transfers.c.amount
        pending_amount = func.coalesce(pending.c.amount, 0)

        def side(column: Any) -> Any:
            return (
                func.coalesce(
                    func.sum(case((is_pending, amount), (resolves, -pending_amount), else_=0)),
                    0,
                ),
                func.coalesce(
                    func.sum(
                        case(
                            (is_pending, 0),
                            (resolves & ~is_post, 0),
                            else_=amount,
                        )
                    ),
                    0,
                ),
            )

        async with self._connection(conn) as c:
            exists = (await c.execute(select(accounts.c.id).where(accounts.c.id == aid))).first()
            if exists is None:
                return None
            base = transfers.outerjoin(pending, pending.c.id == transfers.c.pending_id)
            dr = (
                await c.execute(
                    select(*side(transfers.c.debit_account_id))
                    .select_from(base)
                    .where(and_(transfers.c.debit_account_id == aid, when <= at))
                )
            ).one()
            cr = (
                await c.execute(
                    select(*side(transfers.c.credit_account_id))
                    .select_from(base)
                    .where(and_(transfers.c.credit_account_id == aid, when <= at))
                )
            ).one()
        return AccountBalance(int(dr[0]), int(dr[1]), int(cr[0]), int(cr[1]), at)


# Set-based checks for nightly reconciliation: one pass of SQL over all accounts and transfers,
# streamed, so memory stays flat whatever the ledger's size (ledger/check.py keeps dicts).


@dataclass(frozen=True, slots=True)
class CodeTotals:
    """The summed balances of every account of one (ledger, code)."""

    ledger: int
    code: int
    accounts: int
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int


@dataclass(frozen=True, slots=True)
class BalanceMismatch:
    """An account whose stored balances differ from what its transfers say (`summed`): their
    sum (`balance_mismatches`), or the balances recorded on its last one (`window_breaks`)."""

    account_id: int
    name: str
    ledger: int
    code: int
    stored: tuple[int, int, int, int]  # debits_pending, debits_posted, credits_pending, ..._posted
    summed: tuple[int, int, int, int]


async def totals_by_code(conn: AsyncConnection) -> list[CodeTotals]:
    """Per ledger and account code: how many accounts and their summed balances."""
    rows = await conn.execute(
        select(
            accounts.c.ledger,
            accounts.c.code,
            func.count(),
            func.coalesce(func.sum(accounts.c.debits_posted), 0),
            func.coalesce(func.sum(accounts.c.credits_posted), 0),
            func.coalesce(func.sum(accounts.c.debits_pending), 0),
            func.coalesce(func.sum(accounts.c.credits_pending), 0),
        )
        .group_by(accounts.c.ledger, accounts.c.code)
        .order_by(accounts.c.ledger, accounts.c.code)
    )
    return [CodeTotals(*(int(v) for v in r)) for r in rows]


def _entry_deltas(*, probe: bool = False) -> tuple[Any, Any, Any]:
    """What one transfer adds to each of its accounts' pending and posted sides, and the join
    that gives it its pending transfer's amount. Same arithmetic as ledger/check.py: a post, void
    or expiry releases its pending transfer's full amount, and a post then posts its own.
    `probe`: the pending transfer is looked up by its key for the rows that name one (a window
    of the ledger), not joined by hashing every transfer (the whole ledger, read anyway)."""
    pending = transfers.alias("pending")
    is_pending = transfers.c.flags.op("&")(int(TransferFlags.PENDING)) != 0
    is_post = transfers.c.flags.op("&")(int(TransferFlags.POST_PENDING_TRANSFER)) != 0
    resolves = transfers.c.pending_id.is_not(None)
    if probe:
        held = select(pending.c.amount).where(pending.c.id == transfers.c.pending_id)
        released = func.coalesce(held.scalar_subquery(), 0)
        joined: Any = transfers
    else:
        released = func.coalesce(pending.c.amount, 0)
        joined = transfers.outerjoin(pending, pending.c.id == transfers.c.pending_id)
    pending_delta = case((is_pending, transfers.c.amount), (resolves, -released), else_=0)
    posted_delta = case((is_pending, 0), (and_(resolves, ~is_post), 0), else_=transfers.c.amount)
    return pending_delta, posted_delta, joined


async def balance_mismatches(conn: AsyncConnection) -> AsyncIterator[BalanceMismatch]:
    """Every account whose stored balances are not what its transfers add up to, streamed.

    Reads every transfer ever posted: the full check (`onecard ledger check` keeps its own); a
    night reads the day's entries and the last entries of the accounts they touched instead
    (`window_breaks`)."""
    pending_delta, posted_delta, joined = _entry_deltas()
    zero = literal_column("0")
    sides = union_all(
        select(
            transfers.c.debit_account_id.label("aid"),
            pending_delta.label("dp"),
            posted_delta.label("dpo"),
            zero.label("cp"),
            zero.label("cpo"),
        ).select_from(joined),
        select(
            transfers.c.credit_account_id.label("aid"),
            zero.label("dp"),
            zero.label("dpo"),
            pending_delta.label("cp"),
            posted_delta.label("cpo"),
        ).select_from(joined),
    ).subquery()
    summed = (
        select(
            sides.c.aid,
            func.sum(sides.c.dp).label("dp"),
            func.sum(sides.c.dpo).label("dpo"),
            func.sum(sides.c.cp).label("cp"),
            func.sum(sides.c.cpo).label("cpo"),
        )
        .group_by(sides.c.aid)
        .subquery()
    )
    columns = (
        (accounts.c.debits_pending, summed.c.dp),
        (accounts.c.debits_posted, summed.c.dpo),
        (accounts.c.credits_pending, summed.c.cp),
        (accounts.c.credits_posted, summed.c.cpo),
    )
    query = (
        select(
            accounts.c.id,
            accounts.c.name,
            accounts.c.ledger,
            accounts.c.code,
            *[stored for stored, _ in columns],
            *[func.coalesce(total, 0) for _, total in columns],
        )
        .select_from(accounts.outerjoin(summed, summed.c.aid == accounts.c.id))
        .where(or_(*[stored != func.coalesce(total, 0) for stored, total in columns]))
        .order_by(accounts.c.name)
    )
    result = await conn.stream(query)
    async for r in result:
        yield BalanceMismatch(
            account_id=from_uuid(r[0]),
            name=r[1],
            ledger=r[2],
            code=r[3],
            stored=(int(r[4]), int(r[5]), int(r[6]), int(r[7])),
            summed=(int(r[8]), int(r[9]), int(r[10]), int(r[11])),
        )


# The nightly form of the balance check, O(a window's entries + the accounts they touched), not
# O(history). Every transfer row records each of its two accounts' four balances right after it.
# So for each account a window touched: (1) its stored balances must be those recorded on its last
# entry (zero with none), and (2) its balances recorded before the window plus what its entries in
# the window moved must be those its last entry in the window records (`window_breaks`; where not,
# `entry_breaks` finds the entry that does not follow from the one before). Checked for
# consecutive windows, (1) and (2) together say what summing every transfer says.

Balances4 = tuple[int, int, int, int]
ZERO4: Balances4 = (0, 0, 0, 0)
# Accounts looked up in one statement, and rows fetched at a time, by the window checks.
ACCOUNTS_PER_STATEMENT = 2_000


@dataclass(frozen=True, slots=True)
class EntryBreak:
    """An entry whose recorded balances are not its account's balances before it plus its own
    amounts (pending and posted, debit and credit)."""

    account_id: int
    transfer_id: int
    timestamp: int
    before: Balances4
    recorded: Balances4
    delta: Balances4  # the entry's own amounts on the account's four sides

    @property
    def expected(self) -> Balances4:
        return _plus(self.before, self.delta)


def _plus(a: Balances4, b: Balances4) -> Balances4:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


def _last_entries(before: int | None, ids: Sequence[Any], *, lateral: bool) -> Any:
    """Per account of `ids` (uuids): the timestamps of its last entry as debit and as credit
    (strictly before `before`, or ever), each found through its account-history index, and the
    four balances recorded there. Rows: id, name, ledger, code,
    stored x4, debit ts, credit ts, debit-side x4, credit-side x4 (None: no such entry).
    `lateral` (PostgreSQL): each last entry is one backward probe of its index returning the
    row; otherwise its timestamp is probed, then the row joined on it."""
    owned = select(
        accounts.c.id,
        accounts.c.name,
        accounts.c.ledger,
        accounts.c.code,
        accounts.c.debits_pending,
        accounts.c.debits_posted,
        accounts.c.credits_pending,
        accounts.c.credits_posted,
    )
    if lateral:
        probes = []
        for is_debit, column in (
            (True, transfers.c.debit_account_id),
            (False, transfers.c.credit_account_id),
        ):
            probe = select(
                transfers.c.timestamp, *[transfers.c[n] for n in _BALANCE_SIDES[is_debit]]
            ).where(column == accounts.c.id)
            if before is not None:
                probe = probe.where(transfers.c.timestamp < before)
            name = "dr_last" if is_debit else "cr_last"
            probes.append(probe.order_by(transfers.c.timestamp.desc()).limit(1).lateral(name))
        dr, cr = probes
        query = (
            owned.add_columns(dr.c.timestamp.label("dr_ts"), cr.c.timestamp.label("cr_ts"))
            .add_columns(*list(dr.c)[1:], *list(cr.c)[1:])
            .select_from(
                accounts.outerjoin(dr, literal_column("true")).outerjoin(cr, literal_column("true"))
            )
        )
        # One array parameter, not one parameter an id.
        wanted = bindparam("ids", list(ids), type_=PG_ARRAY(PG_UUID(as_uuid=True)))
        return query.where(accounts.c.id == any_(wanted))
    lasts = []
    for column in (transfers.c.debit_account_id, transfers.c.credit_account_id):
        last = select(func.max(transfers.c.timestamp)).where(column == accounts.c.id)
        if before is not None:
            last = last.where(transfers.c.timestamp < before)
        lasts.append(last.scalar_subquery())
    chosen = owned.add_columns(lasts[0].label("dr_ts"), lasts[1].label("cr_ts"))
    base = chosen.where(accounts.c.id.in_(ids)).subquery("base")
    dr_row = transfers.alias("dr_entry")
    cr_row = transfers.alias("cr_entry")
    query = select(
        *base.c,
        *[dr_row.c[n] for n in _BALANCE_SIDES[True]],
        *[cr_row.c[n] for n in _BALANCE_SIDES[False]],
    ).select_from(
        base.outerjoin(
            dr_row, and_(dr_row.c.debit_account_id == base.c.id, dr_row.c.timestamp == base.c.dr_ts)
        ).outerjoin(
            cr_row,
            and_(cr_row.c.credit_account_id == base.c.id, cr_row.c.timestamp == base.c.cr_ts),
        )
    )
    return query


def _recorded_last(row: Sequence[Any]) -> Balances4:
    """The balances recorded on the later of an account's last debit and last credit entry."""
    dr_ts, cr_ts = row[8], row[9]
    if dr_ts is None and cr_ts is None:
        return ZERO4
    values = row[10:14] if cr_ts is None or (dr_ts is not None and dr_ts > cr_ts) else row[14:18]
    return (int(values[0]), int(values[1]), int(values[2]), int(values[3]))


async def _last_rows(
    conn: AsyncConnection, account_ids: Sequence[int], at: int | None
) -> dict[int, Sequence[Any]]:
    """`_last_entries` rows of the accounts `account_ids` (strictly before ledger time `at`, or
    ever), by account id."""
    out: dict[int, Sequence[Any]] = {}
    lateral = conn.dialect.name == "postgresql"
    for start in range(0, len(account_ids), ACCOUNTS_PER_STATEMENT):
        ids = [to_uuid(a) for a in account_ids[start : start + ACCOUNTS_PER_STATEMENT]]
        for r in await conn.execute(_last_entries(at, ids, lateral=lateral)):
            out[from_uuid(r[0])] = r
    return out


async def stale_balances(
    conn: AsyncConnection, account_ids: Sequence[int]
) -> list[BalanceMismatch]:
    """Of the accounts `account_ids`, those whose stored balances are not those recorded on
    their last entry (zero for an account with none): two index probes an account."""
    out = []
    for aid, r in (await _last_rows(conn, list(account_ids), None)).items():
        stored = (int(r[4]), int(r[5]), int(r[6]), int(r[7]))
        last = _recorded_last(r)
        if stored != last:
            out.append(BalanceMismatch(aid, r[1], r[2], r[3], stored, last))
    return out


async def stale_balances_all(
    conn: AsyncConnection, skip: set[int] | None = None
) -> AsyncIterator[BalanceMismatch]:
    """`stale_balances` of every account but those in `skip` (already looked at), in id order,
    ACCOUNTS_PER_STATEMENT at a time (by key: each page starts after the last id of the one
    before)."""
    after = None
    while True:
        page = select(accounts.c.id).order_by(accounts.c.id).limit(ACCOUNTS_PER_STATEMENT)
        if after is not None:
            page = page.where(accounts.c.id > after)
        ids = [r[0] for r in await conn.execute(page)]
        if not ids:
            return
        after = ids[-1]
        wanted = [a for a in map(from_uuid, ids) if not skip or a not in skip]
        for found in sorted(await stale_balances(conn, wanted), key=lambda m: m.account_id):
            yield found


async def account_names(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, str]:
    """The names of the accounts `ids` (those that exist)."""
    wanted = [to_uuid(i) for i in ids]
    out: dict[int, str] = {}
    for start in range(0, len(wanted), ACCOUNTS_PER_STATEMENT):
        chunk = wanted[start : start + ACCOUNTS_PER_STATEMENT]
        rows = await conn.execute(
            select(accounts.c.id, accounts.c.name).where(accounts.c.id.in_(chunk))
        )
        out.update((from_uuid(r[0]), r[1]) for r in rows)
    return out


async def posted_through(conn: AsyncConnection) -> int:
    """The ledger time up to which every transfer is committed and visible to `conn`'s next
    statement: the clock's last reservation as `conn` sees it (0 on a ledger that never posted).
    A transaction reserving timestamps holds the clock row until it commits, so a reservation
    seen here is committed, and so is every one before it: a window ending past this value
    misses nothing that is posted later."""
    last = (await conn.execute(select(clock.c.last_ns).where(clock.c.id == 1))).scalar()
    return int(last or 0)


async def entries_in(conn: AsyncConnection, since: int, until: int) -> int:
    """How many account entries (two a transfer) were posted in [since, until)."""
    window = and_(transfers.c.timestamp >= since, transfers.c.timestamp < until)
    count = (await conn.execute(select(func.count()).where(window))).scalar_one()
    return 2 * int(count)


def _window_sides(since: int, until: int | None, account_ids: Sequence[int] | None = None) -> Any:
    """The entries posted in [since, until) (or since `since`; of the accounts `account_ids`, or
    all), two a transfer: account, transfer id, timestamp, its own amounts on the account's four
    sides (d0..d3) and the four balances recorded for the account (a0..a3)."""
    pending_delta, posted_delta, joined = _entry_deltas(probe=True)
    zero: Any = literal_column("0")
    window = transfers.c.timestamp >= since
    if until is not None:
        window = and_(window, transfers.c.timestamp < until)
    wanted = None if account_ids is None else [to_uuid(a) for a in account_ids]
    parts = []
    for is_debit, column in (
        (True, transfers.c.debit_account_id),
        (False, transfers.c.credit_account_id),
    ):
        mine = (pending_delta, posted_delta)
        none = (zero, zero)
        part = (
            select(
                column.label("aid"),
                transfers.c.id.label("tid"),
                transfers.c.timestamp.label("ts"),
                *[
                    v.label(f"d{i}")
                    for i, v in enumerate((*mine, *none) if is_debit else (*none, *mine))
                ],
                *[transfers.c[n].label(f"a{i}") for i, n in enumerate(_BALANCE_SIDES[is_debit])],
            )
            .select_from(joined)
            .where(window)
        )
        parts.append(part if wanted is None else part.where(column.in_(wanted)))
    return union_all(*parts).subquery("sides")


@dataclass(frozen=True, slots=True)
class WindowBreak:
    """An account whose balances recorded on its last entry before a window, plus the amounts of
    its entries in the window, are not the balances recorded on its last entry in it."""

    account_id: int
    before: Balances4
    moved: Balances4
    recorded: Balances4

    @property
    def expected(self) -> Balances4:
        return _plus(self.before, self.moved)


async def window_breaks(
    conn: AsyncConnection, since: int, until: int, touched: set[int] | None = None
) -> AsyncIterator[WindowBreak | BalanceMismatch]:
    """The accounts with entries in [since, until) whose entries there do not add up (a
    WindowBreak: from the balances recorded before the window to those recorded on its last entry
    in it), or whose stored balances are not those recorded on their last entry ever (a
    BalanceMismatch). One pass over the entries since the window's start (the window's summed per
    account, with the last one's balances in it and ever; no sort; on SQLite the last ever is
    probed), then per account two index probes for its last entry before the window. Consecutive
    windows checked add up to the sum over every transfer; `entry_breaks` names the entries of an
    account found here. An account no entry of the window touched is not read
    (`balance_mismatches` reads every one). `touched`: filled with the accounts judged here."""
    postgres = conn.dialect.name == "postgresql"
    recorded_at = None if postgres else until
    sides = _window_sides(since, recorded_at)
    inside = sides.c.ts < until
    recorded = [sides.c[f"a{i}"] for i in range(4)]
    if postgres:  # the greatest (timestamp, balances) array is the last entry's
        last = pg_array([sides.c.ts, *recorded])
        query = select(
            sides.c.aid,
            *[func.sum(sides.c[f"d{i}"]).filter(inside) for i in range(4)],
            func.max(last).filter(inside),
            func.max(last),
        )
    else:  # SQLite: bare columns next to one max() come from the row holding the max
        query = select(
            sides.c.aid,
            *[func.sum(sides.c[f"d{i}"]) for i in range(4)],
            func.max(sides.c.ts),
            *recorded,
        )
    query = query.group_by(sides.c.aid)
    batch: list[tuple[int, Balances4, Balances4, Balances4 | None]] = []

    async def judged() -> AsyncIterator[WindowBreak | BalanceMismatch]:
        ids = [aid for aid, _, _, _ in batch]
        owned = await _last_rows(conn, ids, since)
        ever = {} if postgres else await _last_rows(conn, ids, None)
        for aid, moved, in_window, last_ever in batch:
            r = owned.get(aid)
            if r is None:
                continue  # not an account (an entry naming none: the full check finds it)
            if touched is not None:
                touched.add(aid)
            found = WindowBreak(aid, _recorded_last(r), moved, in_window)
            if found.expected != found.recorded:
                yield found
            stored = (int(r[4]), int(r[5]), int(r[6]), int(r[7]))
            last = last_ever if last_ever is not None else _recorded_last(ever[aid])
            if stored != last:
                yield BalanceMismatch(aid, r[1], r[2], r[3], stored, last)
        batch.clear()

    def four(values: Sequence[Any]) -> Balances4:
        return (int(values[0]), int(values[1]), int(values[2]), int(values[3]))

    # Fetched a batch at a time (a row at a time costs a switch of SQLAlchemy's greenlet each).
    result = await conn.stream(query.execution_options(yield_per=ACCOUNTS_PER_STATEMENT))
    async for rows in result.partitions():
        for r in rows:
            if r[1] is None:
                continue  # entries after the window only: the next window's
            last_ever = four(r[6][1:]) if postgres else None
            in_window = four(r[5][1:]) if postgres else four(r[6:10])
            batch.append((from_uuid(r[0]), four(r[1:5]), in_window, last_ever))
        if len(batch) >= ACCOUNTS_PER_STATEMENT:
            async for found in judged():
                yield found
    async for found in judged():
        yield found


async def entry_breaks(
    conn: AsyncConnection, since: int, until: int, account_ids: Sequence[int] | None = None
) -> AsyncIterator[EntryBreak]:
    """Every entry posted in [since, until) (ledger timestamps; of the accounts `account_ids`,
    or all) whose recorded balances are not its account's balances before it plus its own
    amounts, streamed in account order. Sorts the window's entries by account: for the accounts
    `window_breaks` found, not for a whole day."""
    sides = _window_sides(since, until, account_ids)
    ordered = {"partition_by": sides.c.aid, "order_by": sides.c.ts}
    lagged = select(
        *sides.c, *[func.lag(sides.c[f"a{i}"]).over(**ordered).label(f"p{i}") for i in range(4)]
    ).subquery("lagged")
    c = lagged.c
    off = or_(*[c[f"p{i}"] + c[f"d{i}"] != c[f"a{i}"] for i in range(4)])
    query = select(*c).where(or_(c.p0.is_(None), off)).order_by(c.aid, c.ts)
    firsts: list[tuple[int, int, int, Balances4, Balances4]] = []

    async def judged() -> AsyncIterator[EntryBreak]:
        before = await _last_rows(conn, [f[0] for f in firsts], since)
        for aid, tid, ts, delta, recorded in firsts:
            row = before.get(aid)
            entry = EntryBreak(
                aid, tid, ts, ZERO4 if row is None else _recorded_last(row), recorded, delta
            )
            if entry.expected != recorded:
                yield entry
        firsts.clear()

    result = await conn.stream(query)
    async for r in result:
        aid, tid, ts = from_uuid(r[0]), from_uuid(r[1]), int(r[2])
        delta = (int(r[3]), int(r[4]), int(r[5]), int(r[6]))
        recorded = (int(r[7]), int(r[8]), int(r[9]), int(r[10]))
        if r[11] is None:
            firsts.append((aid, tid, ts, delta, recorded))
            if len(firsts) >= ACCOUNTS_PER_STATEMENT:
                async for entry in judged():
                    yield entry
        else:
            before = (int(r[11]), int(r[12]), int(r[13]), int(r[14]))
            yield EntryBreak(aid, tid, ts, before, recorded, delta)
    async for entry in judged():
        yield entry
