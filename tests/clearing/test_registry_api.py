"""Registry over HTTP: roles see only their own data; cards live, and their money moves."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from clearing.auth import service as auth_service
from clearing.auth.models import Role
from clearing.books import chart
from clearing.cards import service as cards_service
from clearing.db.base import utc_now
from clearing.ingest.models import TapRecord, TapState
from clearing.lists.models import PendingLoad
from clearing.registry import service as registry_service
from clearing.registry.models import CardReplacement, ReplacementState
from ledger import account_id
from tests.clearing.apiharness import batch_body, random_card_no, random_code, tap_record, world
from tests.clearing.residentharness import link, new_resident
from tests.clearing.staffharness import officer


@pytest.fixture(params=["pg_url", "sqlite_url"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


def card_body(card_no: str, holder: str, *, deposit: int = 2000, load: int = 5000) -> dict:
    return {
        "card_no": card_no,
        "card_type": "adult",
        "holder_id": holder,
        "holder_name": "Han Meimei",
        "deposit_fen": deposit,
        "first_load_fen": load,
        "paid_by": "cash",
    }


async def balances(w, *names: str) -> list[int]:
    async with w.app.state.sessionmaker() as session:
        conn = await session.connection()
        states = await w.app.state.ledger.lookup_accounts([account_id(n) for n in names], conn=conn)
    by_id = {s.id: s for s in states}
    out = []
    for name in names:
        state = by_id.get(account_id(name))
        if state is None:
            out.append(0)
        elif chart.account_spec(name).kind.debit_normal:
            out.append(state.balance.debit_balance)
        else:
            out.append(state.balance.credit_balance)
    return out


async def test_requests_without_a_valid_token_are_401(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        assert (await w.client.get("/v1/cards")).status_code == 401
        bad = await w.client.get("/v1/cards", headers={"Authorization": "Bearer oc_nope"})
        assert bad.status_code == 401 and bad.json()["code"] == "unauthenticated"
        assert bad.headers["www-authenticate"] == "Bearer"
        async with w.app.state.sessionmaker() as session:
            token, row = await registry_service.issue_token(
                session, Role.ADMIN, subject="x", label="t"
            )
            await session.commit()
        headers = {"Authorization": f"Bearer {token}"}
        assert (await w.client.get("/v1/me", headers=headers)).json()["role"] == "admin"
        async with w.app.state.sessionmaker() as session:
            await auth_service.revoke_token(session, row.id)
            await session.commit()
        assert (await w.client.get("/v1/me", headers=headers)).status_code == 401
        async with w.app.state.sessionmaker() as session:
            stored = await session.get(type(row), row.id)
            assert stored.token_sha256 != token and token not in stored.token_sha256


async def test_expired_token_is_refused(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        async with w.app.state.sessionmaker() as session:
            token, _ = await registry_service.issue_token(
                session,
                Role.FINANCE,
                subject="f",
                label="t",
                expires_at=utc_now() - timedelta(seconds=1),
            )
            await session.commit()
        response = await w.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


async def test_resident_reads_own_card_but_not_anothers(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        me, neighbour = await new_resident(w), await new_resident(w)
        mine, theirs = random_card_no(), random_card_no()
        # the holder id on the card is not a login: a resident reads the cards they linked
        for card_no, who in ((mine, me), (theirs, neighbour)):
            response = await w.client.post(
                "/v1/cards", json=card_body(card_no, me.resident_id), headers=w.auth("admin")
            )
            assert response.status_code == 201, response.text
            linked = await link(w, who, card_no, 5000)
            assert linked.status_code == 201, linked.text
        token = me.auth
        own = await w.client.get(f"/v1/cards/{mine}", headers=token)
        assert own.status_code == 200
        assert own.json()["balance_fen"] == 5000
        other = await w.client.get(f"/v1/cards/{theirs}", headers=token)
        never_issued = await w.client.get(f"/v1/cards/{random_card_no()}", headers=token)
        # refused exactly as a number never issued: nothing tells which numbers exist
        assert other.status_code == never_issued.status_code == 404
        assert other.json()["code"] == never_issued.json()["code"]
        assert other.headers["content-type"].startswith("application/problem+json")
        listed = await w.client.get("/v1/cards", headers=token)
        assert [c["card_no"] for c in listed.json()] == [mine]
        lost = await w.client.post(
            f"/v1/cards/{theirs}/report-lost", json={"reason": "mine now"}, headers=token
        )
        assert lost.status_code == 404
        own_lost = await w.client.post(
            f"/v1/cards/{mine}/report-lost", json={"reason": "lost it"}, headers=token
        )
        assert own_lost.status_code == 200
        assert (await w.client.get("/v1/participants", headers=token)).status_code == 403
        issue = await w.client.post(
            "/v1/cards", json=card_body(random_card_no(), me.resident_id), headers=token
        )
        assert issue.status_code == 403


async def test_operator_sees_only_its_own_participant_terminals_and_batches(
    db_url, tmp_path
) -> None:
    async with world(db_url, tmp_path) as w:
        rival = await w.add_participant()
        rival_terminal = await w.add_terminal(rival)
        card_no = random_card_no()
        assert (
            await rival_terminal.post_batch(batch_body("r-1", [tap_record(card_no, 1, 1)]))
        ).status_code == 200
        assert (
            await w.terminal.post_batch(batch_body("o-1", [tap_record(card_no, 1, 2)]))
        ).status_code == 200
        op = w.auth("operator")
        participants = (await w.client.get("/v1/participants", headers=op)).json()
        assert [p["code"] for p in participants] == [w.participant]
        assert (await w.client.get(f"/v1/participants/{rival}", headers=op)).status_code == 404
        terminals = (await w.client.get("/v1/terminals", headers=op)).json()
        assert [t["terminal_id"] for t in terminals] == [w.terminal.terminal_id]
        assert (
            await w.client.get(f"/v1/terminals/{rival_terminal.terminal_id}", headers=op)
        ).status_code == 404
        batches = (await w.client.get("/v1/batches", headers=op)).json()
        assert {b["terminal_id"] for b in batches} == {w.terminal.terminal_id}
        assert (
            await w.client.get(f"/v1/batches?terminal_id={rival_terminal.terminal_id}", headers=op)
        ).status_code == 404
        assert (await w.client.get(f"/v1/cards/{card_no}", headers=op)).status_code == 403
        finance = (await w.client.get("/v1/batches?limit=500", headers=w.auth("finance"))).json()
        assert {w.terminal.terminal_id, rival_terminal.terminal_id} <= {
            b["terminal_id"] for b in finance
        }
        create = await w.client.post(
            "/v1/participants",
            json={
                "code": random_code("x"),
                "name": "X",
                "kind": "clinic",
                "commission_bp": 10,
                "bank_account": "6222020200112233445",
                "bank_name": "B",
            },
            headers=op,
        )
        assert create.status_code == 403


async def test_participant_and_terminal_validation(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        admin = w.auth("admin")
        base = {
            "code": "clinic-1",
            "name": "First Clinic",
            "kind": "clinic",
            "commission_bp": 10000,
            "bank_account": "CN12 3456 7890 1234",
            "bank_name": "Bank of Plateau",
        }
        assert (
            await w.client.post("/v1/participants", json=base, headers=admin)
        ).status_code == 201
        again = await w.client.post("/v1/participants", json=base, headers=admin)
        assert again.status_code == 409
        for field, value in [
            ("commission_bp", 10001),
            ("commission_bp", -1),
            ("code", "Bad Code"),
            ("kind", "bank"),
            ("bank_account", "x"),
        ]:
            response = await w.client.post(
                "/v1/participants", json={**base, "code": "c-2", field: value}, headers=admin
            )
            assert response.status_code == 422, (field, response.text)
        terminal = {
            "terminal_id": "00000100005A",
            "participant": "clinic-1",
            "kind": "clinic",
            "public_key": "ab" * 32,
        }
        assert (
            await w.client.post("/v1/terminals", json=terminal, headers=admin)
        ).status_code == 201
        assert (
            await w.client.post("/v1/terminals", json=terminal, headers=admin)
        ).status_code == 409
        unknown = {**terminal, "terminal_id": "00000100005B", "participant": "nobody"}
        assert (
            await w.client.post("/v1/terminals", json=unknown, headers=admin)
        ).status_code == 404
        lower = {**terminal, "terminal_id": "00000100005b"}
        assert (await w.client.post("/v1/terminals", json=lower, headers=admin)).status_code == 422
        twin = {**terminal, "terminal_id": "00000100005C"}
        shared = await w.client.post("/v1/terminals", json=twin, headers=admin)
        assert shared.status_code == 409 and "00000100005A" in shared.json()["detail"]
        suspended = await w.client.patch(
            "/v1/terminals/00000100005A", json={"status": "suspended"}, headers=admin
        )
        assert suspended.json()["status"] == "suspended"


async def test_issue_card_moves_deposit_and_first_load(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        card_no = random_card_no()
        before_cash = (await balances(w, chart.BANK_CASH))[0]
        response = await w.client.post(
            "/v1/cards",
            json=card_body(card_no, "r-9", deposit=2000, load=5000),
            headers=w.auth("admin"),
        )
        assert response.status_code == 201, response.text
        assert await balances(w, chart.card(card_no), chart.card_deposit(card_no)) == [5000, 2000]
        assert (await balances(w, chart.BANK_CASH))[0] == before_cash + 7000
        again = await w.client.post(
            "/v1/cards", json=card_body(card_no, "r-9"), headers=w.auth("admin")
        )
        assert again.status_code == 409
        assert await balances(w, chart.card(card_no)) == [5000]
        detail = (await w.client.get(f"/v1/cards/{card_no}", headers=w.auth("finance"))).json()
        assert [e["kind"] for e in detail["events"]] == ["issued"]


async def _ask_refund(w, card_no: str, asker: dict[str, str]):  # type: ignore[no-untyped-def]
    body = {"kind": "card_refund", "target": card_no, "reason": "returned", "paid_by": "cash"}
    return await w.client.post("/v1/approvals", json=body, headers=asker)


async def test_refund_pays_back_balance_and_deposit_and_denies_the_card(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        card_no = random_card_no()
        admin = w.auth("admin")
        await w.client.post("/v1/cards", json=card_body(card_no, "r-1"), headers=admin)
        direct = await w.client.post(
            f"/v1/cards/{card_no}/refund",
            json={"reason": "returned", "paid_by": "cash"},
            headers=admin,
        )
        assert direct.status_code == 409 and direct.json()["code"] == "second_person_required"
        _, counter = await officer(w.app, Role.ADMIN, prefix="adm")
        _, finance = await officer(w.app)
        asked = await _ask_refund(w, card_no, counter)
        assert asked.status_code == 201, asked.text
        assert await balances(w, chart.card(card_no)) == [5000]  # asking moves nothing
        approved = await w.client.post(
            f"/v1/approvals/{asked.json()['id']}/approve", json={}, headers=finance
        )
        assert approved.status_code == 200, approved.text
        detail = (await w.client.get(f"/v1/cards/{card_no}", headers=w.auth("finance"))).json()
        assert detail["card"]["status"] == "refunded"
        assert await balances(w, chart.card(card_no), chart.card_deposit(card_no)) == [0, 0]
        full = (await w.terminal.get_list("deny", 0)).json()
        assert card_no in full["added"]
        twice = await _ask_refund(w, card_no, counter)
        assert twice.status_code == 409 and twice.json()["code"] == "card_state_conflict"


async def test_refund_waits_for_uncleared_taps(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        card_no = random_card_no()
        admin = w.auth("admin")
        await w.client.post("/v1/cards", json=card_body(card_no, "r-1"), headers=admin)
        await w.terminal.post_batch(batch_body("b-1", [tap_record(card_no, 1, 0, balance=5000)]))
        _, counter = await officer(w.app, Role.ADMIN, prefix="adm")
        _, finance = await officer(w.app)
        asked = await _ask_refund(w, card_no, counter)
        refused = await w.client.post(
            f"/v1/approvals/{asked.json()['id']}/approve", json={}, headers=finance
        )
        assert refused.status_code == 409 and refused.json()["code"] == "card_has_uncleared_taps"
        pending = await w.client.get(f"/v1/approvals/{asked.json()['id']}", headers=finance)
        assert pending.json()["state"] == "pending"  # refused, so nothing was decided
        assert await balances(w, chart.card(card_no)) == [5000]


async def test_replacement_moves_balance_only_after_last_taps_cleared(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        admin = w.auth("admin")
        old, new = random_card_no(), random_card_no()
        await w.client.post(
            "/v1/cards", json=card_body(old, "r-7", deposit=2000, load=5000), headers=admin
        )
        await w.client.post(f"/v1/cards/{old}/report-lost", json={"reason": "lost"}, headers=admin)
        # a tap made before the loss reached the fleet, still waiting for clearing
        await w.terminal.post_batch(
            batch_body("b-1", [tap_record(old, 1, 0, amount_fen=200, balance=5000)])
        )
        replaced = await w.client.post(
            f"/v1/cards/{old}/replace", json={"new_card_no": new, "reason": "lost"}, headers=admin
        )
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["state"] == "waiting"
        assert await balances(w, chart.card_deposit(old), chart.card_deposit(new)) == [0, 2000]
        ledger = w.app.state.ledger
        far_future = utc_now() + timedelta(days=30)
        async with w.app.state.sessionmaker() as session:
            assert await cards_service.complete_replacements(session, ledger, now=far_future) == []
            await session.commit()
        # the engine clears the tap: card:<old> pays the operator 200 (done here by hand)
        async with w.app.state.sessionmaker() as session:
            from clearing.books.codes import LEDGER_CNY, TransferCode
            from ledger import Transfer, transfer_id

            conn = await session.connection()
            await registry_service.money.ensure_accounts(
                ledger, [chart.payable(w.participant)], conn=conn
            )
            results = await ledger.create_transfers(
                [
                    Transfer(
                        id=transfer_id(f"test-tap:{old}:0"),
                        debit_account_id=account_id(chart.card(old)),
                        credit_account_id=account_id(chart.payable(w.participant)),
                        amount=200,
                        ledger=LEDGER_CNY,
                        code=int(TransferCode.TAP_PURCHASE),
                    )
                ],
                conn=conn,
            )
            assert results[0].ok
            tap = (
                await session.execute(select(TapRecord).where(TapRecord.card_no == old))
            ).scalar_one()
            tap.state = TapState.CLEARED
            await session.commit()
        async with w.app.state.sessionmaker() as session:
            done = await cards_service.complete_replacements(session, ledger, now=far_future)
            await session.commit()
        assert [r.old_card_no for r in done if r.old_card_no == old] == [old]
        assert await balances(w, chart.card(old), chart.card_pending(new)) == [0, 4800]
        async with w.app.state.sessionmaker() as session:
            replacement = await session.get(CardReplacement, old)
            assert replacement.state is ReplacementState.DONE and replacement.moved_fen == 4800
            load = await session.get(PendingLoad, replacement.load_id)
            assert load.card_no == new and load.amount_fen == 4800
        # running again moves nothing twice
        async with w.app.state.sessionmaker() as session:
            again = await cards_service.complete_replacements(session, ledger, now=far_future)
            await session.commit()
        assert old not in [r.old_card_no for r in again]
        assert await balances(w, chart.card(old), chart.card_pending(new)) == [0, 4800]
        action = (await w.terminal.get_list("action", 0)).json()
        loads = {item["load_id"]: item for item in action["added"]}
        assert loads[f"replace-{old}"]["card_no"] == new
        assert loads[f"replace-{old}"]["amount_fen"] == 4800
        statuses = {
            c: (await w.client.get(f"/v1/cards/{c}", headers=admin)).json()["card"]["status"]
            for c in (old, new)
        }
        assert statuses == {old: "replaced", new: "active"}


async def test_card_state_rules(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        admin = w.auth("admin")
        card_no = random_card_no()
        await w.client.post(
            "/v1/cards", json=card_body(card_no, "r-1", deposit=0, load=0), headers=admin
        )
        unblock_active = await w.client.post(
            f"/v1/cards/{card_no}/unblock", json={"reason": "x"}, headers=admin
        )
        assert unblock_active.status_code == 409
        first = await w.client.post(
            f"/v1/cards/{card_no}/report-lost", json={"reason": "x"}, headers=admin
        )
        second = await w.client.post(
            f"/v1/cards/{card_no}/report-lost", json={"reason": "x"}, headers=admin
        )
        assert second.status_code == 200
        assert second.json()["deny_list_version"] == first.json()["deny_list_version"]
        same = await w.client.post(
            f"/v1/cards/{card_no}/replace",
            json={"new_card_no": card_no, "reason": "x"},
            headers=admin,
        )
        # schema-valid, refused by the state (the number is taken, by this card): 409, not 422
        assert same.status_code == 409, same.text
        assert same.json()["detail"].startswith(f"card {card_no} already exists")
        assert (await w.client.get(f"/v1/cards/{card_no}", headers=admin)).json()["card"][
            "replaced_by"
        ] is None
        missing = await w.client.post(
            f"/v1/cards/{random_card_no()}/block", json={"reason": "x"}, headers=admin
        )
        assert missing.status_code == 404


async def test_replacement_waits_until_the_whole_fleet_holds_the_deny_list(
    sqlite_url, tmp_path
) -> None:
    async with world(sqlite_url, tmp_path) as w:
        admin = w.auth("admin")
        old, new = random_card_no(), random_card_no()
        await w.client.post(
            "/v1/cards", json=card_body(old, "r-8", deposit=0, load=900), headers=admin
        )
        await w.client.post(
            f"/v1/cards/{old}/replace",
            json={"new_card_no": new, "reason": "damaged"},
            headers=admin,
        )
        second = await w.add_terminal()
        ledger = w.app.state.ledger
        soon = utc_now() + cards_service.REPLACEMENT_SETTLE + timedelta(minutes=1)

        async def complete(now):
            async with w.app.state.sessionmaker() as session:
                done = await cards_service.complete_replacements(session, ledger, now=now)
                await session.commit()
            return [r.old_card_no for r in done]

        assert await complete(soon) == []  # no terminal has fetched the deny list yet
        assert (await w.terminal.get_list("deny", 0)).status_code == 200
        assert await complete(soon) == []  # one terminal still behind
        assert (await second.get_list("deny", 0)).status_code == 200
        assert await complete(utc_now()) == []  # the whole fleet has it, but just now
        assert await complete(soon) == [old]
        assert await balances(w, chart.card(old), chart.card_pending(new)) == [0, 900]


async def test_replacement_task_moves_a_balance_held_past_the_maximum(
    sqlite_url, tmp_path, monkeypatch
) -> None:
    async with world(sqlite_url, tmp_path) as w:
        admin = w.auth("admin")
        old, new = random_card_no(), random_card_no()
        await w.client.post(
            "/v1/cards", json=card_body(old, "r-5", deposit=0, load=700), headers=admin
        )
        await w.client.post(
            f"/v1/cards/{old}/replace", json={"new_card_no": new, "reason": "x"}, headers=admin
        )
        async with w.app.state.sessionmaker() as session:
            replacement = await session.get(CardReplacement, old)
            replacement.requested_at = utc_now() - cards_service.REPLACEMENT_HOLD_MAX
            await session.commit()
        monkeypatch.setenv("ONECARD_DATABASE_URL", sqlite_url)
        from clearing.cards import tasks
        from clearing.settings import get_settings

        get_settings.cache_clear()
        try:
            moved = await asyncio.to_thread(tasks.complete_replacements)
            again = await asyncio.to_thread(tasks.complete_replacements)
        finally:
            get_settings.cache_clear()
        assert moved == [
            {"old_card_no": old, "new_card_no": new, "moved_fen": 700, "load_id": f"replace-{old}"}
        ]
        assert again == []
        assert await balances(w, chart.card(old), chart.card_pending(new)) == [0, 700]


async def test_issue_run_is_all_or_nothing(db_url, tmp_path) -> None:
    async with world(db_url, tmp_path) as w:
        admin = w.auth("admin")
        numbers = [random_card_no() for _ in range(300)]
        run = [card_body(n, f"r-{i}", deposit=1000, load=i) for i, n in enumerate(numbers)]
        issued = await w.client.post("/v1/cards/issue-run", json={"cards": run}, headers=admin)
        assert issued.status_code == 201, issued.text
        assert [c["card_no"] for c in issued.json()] == numbers
        assert await balances(w, chart.card(numbers[7]), chart.card_deposit(numbers[7])) == [
            7,
            1000,
        ]
        assert await balances(w, chart.card(numbers[0])) == [0]
        fresh = random_card_no()
        clash = [card_body(fresh, "r-x"), card_body(numbers[3], "r-y")]
        refused = await w.client.post("/v1/cards/issue-run", json={"cards": clash}, headers=admin)
        assert refused.status_code == 409
        assert (await w.client.get(f"/v1/cards/{fresh}", headers=admin)).status_code == 404
        assert await balances(w, chart.card(fresh)) == [0]
        twice = [card_body(fresh, "r-x"), card_body(fresh, "r-x")]
        dup = await w.client.post("/v1/cards/issue-run", json={"cards": twice}, headers=admin)
        # a number twice in one run conflicts with itself as with an issued card: 409, named
        assert dup.status_code == 409 and fresh in dup.json()["detail"]
        too_many = {"cards": [card_body(random_card_no(), "r") for _ in range(2001)]}
        assert (
            await w.client.post("/v1/cards/issue-run", json=too_many, headers=admin)
        ).status_code == 422


class RefusingLedger:
    """The real ledger, except that it refuses any transfer out of one card (a fake of the
    same protocol, standing in for a ledger-side refusal)."""

    def __init__(self, ledger, refused_card_no: str) -> None:
        self.ledger = ledger
        self.refused = account_id(chart.card(refused_card_no))

    async def create_ledgers(self, specs, *, conn=None):
        return await self.ledger.create_ledgers(specs, conn=conn)

    async def create_accounts(self, accounts, *, conn=None):
        return await self.ledger.create_accounts(accounts, conn=conn)

    async def lookup_accounts(self, ids, *, conn=None):
        return await self.ledger.lookup_accounts(ids, conn=conn)

    async def create_transfers(self, transfers, *, conn=None):
        from ledger import CreateTransferResult

        if any(t.debit_account_id == self.refused for t in transfers):
            return [CreateTransferResult.EXCEEDS_CREDITS for _ in transfers]
        return await self.ledger.create_transfers(transfers, conn=conn)


async def test_a_refused_replacement_does_not_hold_back_the_others(sqlite_url, tmp_path) -> None:
    async with world(sqlite_url, tmp_path) as w:
        admin = w.auth("admin")
        pairs = [(random_card_no(), random_card_no()) for _ in range(2)]
        for holder, (old, new) in enumerate(pairs):
            await w.client.post(
                "/v1/cards", json=card_body(old, f"r-{holder}", deposit=0, load=500), headers=admin
            )
            await w.client.post(
                f"/v1/cards/{old}/replace", json={"new_card_no": new, "reason": "x"}, headers=admin
            )
        (bad_old, bad_new), (good_old, good_new) = pairs
        ledger = RefusingLedger(w.app.state.ledger, bad_old)
        later = utc_now() + cards_service.REPLACEMENT_HOLD_MAX
        async with w.app.state.sessionmaker() as session:
            done = await cards_service.complete_replacements(session, ledger, now=later)
            await session.commit()
        assert [r.old_card_no for r in done] == [good_old]
        assert await balances(w, chart.card(good_old), chart.card_pending(good_new)) == [0, 500]
        assert await balances(w, chart.card(bad_old), chart.card_pending(bad_new)) == [500, 0]
        async with w.app.state.sessionmaker() as session:
            waiting = await session.get(CardReplacement, bad_old)
            assert waiting.state is ReplacementState.WAITING and waiting.load_id is None
            assert await session.get(PendingLoad, f"replace-{bad_old}") is None
