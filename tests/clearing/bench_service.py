"""Service figures on a real uvicorn: batch ingestion over HTTP, deny-list change and fetch.

    .venv/bin/python -m tests.clearing.bench_service --batches 20
    (ONECARD_BENCH_DATABASE_URL, default: the PostgreSQL test database)

Registers its own participant and terminal (random ids), so it can run on a used database.
Ends with one JSON line. Figures are noisy on a shared machine: compare runs, not absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clearing import db
from clearing.auth.models import Role
from terminals.signing import TerminalCredential, signed_headers
from tests.clearing.apiharness import (
    issue_token_in_subprocess,
    public_hex,
    random_card_no,
    random_code,
    random_terminal_id,
    tap_record,
    uvicorn_server,
)

RECORDS_PER_BATCH = 5000
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/onecard_test"


def signed(key: Ed25519PrivateKey, terminal_id: str, method: str, url: str, body: bytes) -> dict:
    """RFC 9421 headers from the terminals package's signer, for the absolute `url`."""
    credential = TerminalCredential(terminal_id, key)
    headers = signed_headers(credential, method, url, body, int(time.time()))
    return {**headers, "Content-Type": "application/json"}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=20, help="batches of 5,000 records")
    parser.add_argument("--cards", type=int, default=200, help="cards reported lost")
    args = parser.parse_args()
    url = os.environ.get("ONECARD_BENCH_DATABASE_URL", DEFAULT_URL)
    db.upgrade(url)
    with uvicorn_server(url, Path(tempfile.mkdtemp())) as (base, env):
        token = issue_token_in_subprocess(env, Role.ADMIN, "bench")
        admin = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
        )
        code, key, terminal_id = (
            random_code("bus"),
            Ed25519PrivateKey.generate(),
            random_terminal_id(),
        )
        admin.post(
            "/v1/participants",
            json={
                "code": code,
                "name": "Bench Bus",
                "kind": "bus_operator",
                "commission_bp": 1,
                "bank_account": "6222020200112233445",
                "bank_name": "Bench Bank",
            },
        ).raise_for_status()
        admin.post(
            "/v1/terminals",
            json={
                "terminal_id": terminal_id,
                "participant": code,
                "kind": "bus",
                "public_key": public_hex(key),
            },
        ).raise_for_status()
        client = httpx.Client(base_url=base, timeout=120)
        card_no = random_card_no()
        bodies = [
            json.dumps(
                {
                    "batch_id": f"bench-{b}",
                    "records": [
                        tap_record(card_no, b * RECORDS_PER_BATCH + i + 1, i % 65536)
                        for i in range(RECORDS_PER_BATCH)
                    ],
                },
                separators=(",", ":"),
            ).encode()
            for b in range(args.batches)
        ]
        path = f"/v1/terminals/{terminal_id}/batches"
        started = time.perf_counter()
        for body in bodies:
            client.post(
                path, content=body, headers=signed(key, terminal_id, "POST", f"{base}{path}", body)
            ).raise_for_status()
        ingest_s = time.perf_counter() - started
        cards = [random_card_no() for _ in range(args.cards)]
        admin.post(
            "/v1/cards/issue-run",
            json={
                "cards": [
                    {
                        "card_no": c,
                        "card_type": "adult",
                        "holder_id": "bench",
                        "holder_name": "Bench",
                        "deposit_fen": 0,
                        "first_load_fen": 0,
                    }
                    for c in cards
                ]
            },
        ).raise_for_status()
        lost = []
        for c in cards:
            t0 = time.perf_counter()
            admin.post(f"/v1/cards/{c}/report-lost", json={"reason": "bench"}).raise_for_status()
            lost.append(time.perf_counter() - t0)
        list_path = f"/v1/terminals/{terminal_id}/deny-list?since=0"
        head = client.get(
            list_path, headers=signed(key, terminal_id, "GET", f"{base}{list_path}", b"")
        )
        version = head.json()["version"]
        fetches = []
        delta_path = f"/v1/terminals/{terminal_id}/deny-list?since={max(0, version - 5)}"
        for _ in range(args.cards):
            t0 = time.perf_counter()
            client.get(
                delta_path, headers=signed(key, terminal_id, "GET", f"{base}{delta_path}", b"")
            ).raise_for_status()
            fetches.append(time.perf_counter() - t0)
    records = args.batches * RECORDS_PER_BATCH
    print(
        json.dumps(
            {
                "backend": url.split("+")[0],
                "ingest_records": records,
                "ingest_seconds": round(ingest_s, 2),
                "ingest_records_per_s": round(records / ingest_s),
                "batch_bytes": len(bodies[0]),
                "report_lost_ms_p50": percentile(lost, 0.5),
                "report_lost_ms_p95": percentile(lost, 0.95),
                "deny_delta_fetch_ms_p50": percentile(fetches, 0.5),
                "deny_delta_fetch_ms_p95": percentile(fetches, 0.95),
            }
        )
    )


if __name__ == "__main__":
    main()
