"""The biller service as tests run it: the real simulator process (python -m
clearing.billing.simulator) on a free port with storage of its own, started once per test
session and stopped at the end. Imported explicitly by the bill tests."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

READY_S_MAX = 20.0


@dataclass(frozen=True)
class BillerService:
    url: str
    data_dir: Path

    def outage(self, *, requests: int = 0, seconds: float = 0) -> None:
        response = httpx.post(
            f"{self.url}/admin/outage", json={"requests": requests, "seconds": seconds}
        )
        response.raise_for_status()

    def add_bill(
        self, biller: str, amount_due_fen: int, *, status: str = "open", due_in_days: int = 20
    ) -> dict[str, Any]:
        """A new bill on a fresh account (the service lives for the whole test session)."""
        body = {
            "biller": biller,
            "account_no": f"T{secrets.token_hex(6)}",
            "amount_due_fen": amount_due_fen,
            "status": status,
            "due_in_days": due_in_days,
            "holder_name": "Test Household",
        }
        return httpx.post(f"{self.url}/admin/bills", json=body).raise_for_status().json()

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/admin/stats").raise_for_status().json()

    def confirmation_file(self, biller: str, day: str) -> list[str]:
        url = f"{self.url}/billers/{biller}/confirmation-files/{day}.csv"
        return httpx.get(url).raise_for_status().text.splitlines()


def start_biller_service(data_dir: Path, billers: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start the process, wait until it wrote its port and answers /health."""
    args = [sys.executable, "-m", "clearing.billing.simulator", "--port", "0"]
    args += ["--data", str(data_dir)] + [f"--biller={b}" for b in billers]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ready = data_dir / "ready.json"
    deadline = time.monotonic() + READY_S_MAX
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"biller service exited: {process.stderr and process.stderr.read()}")
        if ready.exists():
            url = f"http://127.0.0.1:{json.loads(ready.read_text())['port']}"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return process, url
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("the biller service did not become ready")


BILLERS = ["city-water=water", "city-power=power", "city-heat=heating"]


@pytest.fixture(scope="session")
def biller_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BillerService]:
    """The real biller service, one per test session (each xdist worker its own)."""
    data_dir = tmp_path_factory.mktemp("biller")
    process, url = start_biller_service(data_dir, BILLERS)
    try:
        yield BillerService(url, data_dir)
    finally:
        process.terminate()
        process.wait(timeout=10)
