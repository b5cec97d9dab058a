"""Ledger: one server-side call loads everything a batch of transfers needs (PostgreSQL only).

`ledger_load_batch` runs, in order and each statement with a fresh snapshot (READ COMMITTED),
what the write path used to send as six to eight statements: the due pending deadlines, the
accounts to lock (the batch's own and those of the transfers it names), the locks in id order
with the balances, what exists under the locks (the batch's ids, remembered failures, how the
named pending transfers were resolved, what was already reversed) and the reserved timestamps
(the clock row, the last lock). A single transfer then costs four round trips (BEGIN, load,
write, COMMIT) instead of nine. The rules stay in Python (ledger.rules), shared with SQLite.
`p_probe_own` false skips looking up the batch's own ids among the transfers (a big batch lets
the primary key find a repeated id, then loads it and applies the rules again).

Revision ID: 0005_ledgerperf
Revises: 0005_bank
"""

from __future__ import annotations

from alembic import op

revision = "0005_ledgerperf"
down_revision = "0005_bank"
branch_labels = None
depends_on = None

# One row shape for every kind of answer; a kind fills the columns it needs, the rest is NULL.
# kind 1: a due deadline (id = pending id); 2: a locked account (id, b_* = ledger, flags and the
# four balances); 3: a stored transfer (the transfer columns); 4: a remembered failure (the
# transfer columns and result); 5: a resolution (id = pending id, flags of the resolving row);
# 6: a reversed total (id = reversed id, amount = sum); 7: the first reserved timestamp.
_COLUMNS = (
    "id, debit_account_id, credit_account_id, amount, pending_id, reverses_id, ledger, code,"
    " flags, timeout_s, user_data_128, user_data_64, user_data_32, effective_at, timestamp"
)
_X_COLUMNS = ", ".join(f"x.{c.strip()}" for c in _COLUMNS.split(","))
# The transfer columns after id, all NULL (debit_account_id .. timestamp).
_NO_TRANSFER = (
    "NULL::uuid, NULL::uuid, NULL::bigint, NULL::uuid, NULL::uuid, NULL::bigint, NULL::int,"
    " NULL::int, NULL::int, NULL::uuid, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint"
)
_NO_ACCOUNT = "NULL::bigint, NULL::int, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint"

_LOAD_BATCH = f"""
CREATE FUNCTION ledger_load_batch(
    p_accounts uuid[], p_own uuid[], p_pending uuid[], p_reverses uuid[],
    p_now bigint, p_expire_max int, p_stamps int, p_lock boolean, p_probe_own boolean
) RETURNS TABLE (
    kind int, id uuid, debit_account_id uuid, credit_account_id uuid, amount bigint,
    pending_id uuid, reverses_id uuid, ledger bigint, code int, flags int, timeout_s int,
    user_data_128 uuid, user_data_64 bigint, user_data_32 bigint, effective_at bigint,
    "timestamp" bigint, result text, b_ledger bigint, b_flags int, b_debits_pending bigint,
    b_debits_posted bigint, b_credits_pending bigint, b_credits_posted bigint
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_due uuid[];
    v_refs uuid[];
    v_accounts uuid[];
    v_late uuid[];
    v_count int;
    v_last bigint;
    v_lock text := CASE WHEN p_lock THEN 'FOR UPDATE' ELSE 'OFFSET 0' END;
    v_select_accounts text;
BEGIN
    -- 1. Open pending transfers whose timeout passed (the ledger's now: max(wall, clock)).
    SELECT coalesce(array_agg(d.pending_id ORDER BY d.expires_at), '{{}}') INTO v_due
    FROM (
        SELECT x.pending_id, x.expires_at FROM ledger_pending_deadlines AS x
        WHERE x.expires_at <= GREATEST(p_now, (SELECT c.last_ns FROM ledger_clock AS c
                                                WHERE c.id = 1))
        ORDER BY x.expires_at LIMIT p_expire_max
    ) AS d;
    RETURN QUERY SELECT 1, u.u, {_NO_TRANSFER}, NULL::text, {_NO_ACCOUNT}
        FROM unnest(v_due) AS u(u);
    v_refs := p_pending || p_reverses || v_due;

    -- 2. Accounts to lock: the batch's own and those of the transfers it names (referenced
    -- transfers never change, so reading them before the locks is safe).
    SELECT array(
        SELECT DISTINCT s.a FROM (
            SELECT unnest(p_accounts) AS a
            UNION ALL SELECT x.debit_account_id FROM ledger_transfers AS x WHERE x.id = ANY(v_refs)
            UNION ALL SELECT x.credit_account_id FROM ledger_transfers AS x WHERE x.id = ANY(v_refs)
        ) AS s ORDER BY s.a
    ) INTO v_accounts;

    -- 3. Lock them probe by probe in id order (one order for every batch: no deadlock).
    v_select_accounts := 'SELECT 2, a.id, {_NO_TRANSFER}, NULL::text,'
        || ' a.ledger::bigint, a.flags, a.debits_pending, a.debits_posted, a.credits_pending,'
        || ' a.credits_posted FROM unnest($1) WITH ORDINALITY AS v(id, n) CROSS JOIN LATERAL'
        || ' (SELECT x.* FROM ledger_accounts AS x WHERE x.id = v.id ' || v_lock || ') AS a'
        || ' ORDER BY v.n';
    RETURN QUERY EXECUTE v_select_accounts USING v_accounts;

    -- 4. A referenced transfer committed between the reads: lock its accounts too.
    SELECT array(
        SELECT DISTINCT s.a FROM (
            SELECT x.debit_account_id AS a FROM ledger_transfers AS x WHERE x.id = ANY(v_refs)
            UNION ALL SELECT x.credit_account_id FROM ledger_transfers AS x WHERE x.id = ANY(v_refs)
        ) AS s WHERE s.a <> ALL(v_accounts) ORDER BY s.a
    ) INTO v_late;
    IF cardinality(v_late) > 0 THEN
        RETURN QUERY EXECUTE v_select_accounts USING v_late;
    END IF;

    -- 5. Under the locks, what exists now is authoritative.
    RETURN QUERY SELECT 3, t.*, NULL::text, {_NO_ACCOUNT}
        FROM unnest(CASE WHEN p_probe_own THEN p_own ELSE '{{}}'::uuid[] END || v_refs) AS v(id)
        CROSS JOIN LATERAL
        (SELECT {_X_COLUMNS} FROM ledger_transfers AS x WHERE x.id = v.id OFFSET 0) AS t;
    RETURN QUERY SELECT 4, f.*, {_NO_ACCOUNT}
        FROM unnest(p_own) AS v(id) CROSS JOIN LATERAL
        (SELECT {_X_COLUMNS}, x.result::text FROM ledger_transfer_failures AS x
         WHERE x.id = v.id OFFSET 0) AS f;
    IF cardinality(p_pending) + cardinality(v_due) > 0 THEN
        RETURN QUERY SELECT 5, t.pending_id, NULL::uuid, NULL::uuid, NULL::bigint, NULL::uuid,
                NULL::uuid, NULL::bigint, NULL::int, t.flags, NULL::int, NULL::uuid,
                NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, {_NO_ACCOUNT}
            FROM unnest(p_pending || v_due) AS v(id) CROSS JOIN LATERAL
            (SELECT x.pending_id, x.flags FROM ledger_transfers AS x WHERE x.pending_id = v.id
             OFFSET 0) AS t;
    END IF;
    IF cardinality(p_reverses) > 0 THEN
        RETURN QUERY SELECT 6, x.reverses_id, NULL::uuid, NULL::uuid, sum(x.amount)::bigint,
                NULL::uuid, NULL::uuid, NULL::bigint, NULL::int, NULL::int, NULL::int,
                NULL::uuid, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text,
                {_NO_ACCOUNT}
            FROM ledger_transfers AS x WHERE x.reverses_id = ANY(p_reverses)
            GROUP BY x.reverses_id;
    END IF;

    -- 6. Reserve the timestamps: the clock row is the last lock a batch takes.
    v_count := p_stamps + cardinality(v_due) + cardinality(p_pending);
    UPDATE ledger_clock AS c SET last_ns = GREATEST(p_now, c.last_ns + 1) + v_count - 1
        WHERE c.id = 1 RETURNING c.last_ns INTO v_last;
    RETURN QUERY SELECT 7, NULL::uuid, NULL::uuid, NULL::uuid, NULL::bigint, NULL::uuid,
        NULL::uuid, NULL::bigint, NULL::int, NULL::int, NULL::int, NULL::uuid, NULL::bigint,
        NULL::bigint, NULL::bigint, v_last - v_count + 1, NULL::text, {_NO_ACCOUNT};
END;
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_LOAD_BATCH)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_load_batch")
