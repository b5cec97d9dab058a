"""The deny list and the action list (pending loads) on the terminal: signed, versioned deltas.

A delta is applied only if the server's Ed25519 signature verifies and it continues the version
the terminal holds (or is a full list); the lists are saved atomically so a power cut leaves the
old or the new version, never half of one. Lookups never touch the network.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cardio.atomicfile import MODE_PUBLIC, write_text_atomic
from terminals.errors import InvariantError, ListSignatureInvalid, TerminalError
from terminals.signing import list_signature_valid

DENY_ENTRIES_MAX = 2_000_000
ACTIONS_MAX = 200_000
LISTS_FORMAT = "onecard-terminal-lists/1"


class ListDeltaRefused(TerminalError):
    """A delta does not continue the version held (or names another list): fetch a full list."""

    code = "list_delta_refused"


@dataclass(frozen=True, slots=True)
class PendingLoad:
    load_id: str
    card_no: str
    amount_fen: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ListVersions:
    deny: int
    action: int


class ListStore:
    """The terminal's copy of the deny and action lists (thread-safe; file-backed when a path is given)."""

    def __init__(self, path: Path | str | None, server_public_key_hex: str) -> None:
        self.path = Path(path) if path is not None else None
        self._server_key = server_public_key_hex
        self._lock = threading.Lock()
        self._deny: set[str] = set()
        self._deny_version = 0
        self._actions: dict[str, PendingLoad] = {}
        self._action_version = 0
        if self.path is not None and self.path.exists():
            self._read()

    # --- lookups (the tap path) ----------------------------------------------------------------

    def is_denied(self, card_no: str) -> bool:
        return card_no in self._deny

    def versions(self) -> ListVersions:
        return ListVersions(self._deny_version, self._action_version)

    def pending_loads(self, card_no: str, now: datetime) -> list[PendingLoad]:
        """Loads waiting for this card that have not expired, oldest id first."""
        with self._lock:
            loads = [
                a for a in self._actions.values() if a.card_no == card_no and a.expires_at > now
            ]
        return sorted(loads, key=lambda a: a.load_id)

    # --- deltas ------------------------------------------------------------------------------

    def apply(self, body: dict[str, object]) -> bool:
        """Apply one signed delta (deny or action); False if it changes nothing (already held)."""
        if not list_signature_valid(body, self._server_key):
            raise ListSignatureInvalid("a list delta failed its signature check and was refused")
        kind = body.get("list")
        version = body.get("version")
        since = body.get("since")
        full = body.get("full") is True
        added = body.get("added") or []
        removed = body.get("removed") or []
        if (
            kind not in ("deny", "action")
            or not isinstance(version, int)
            or not isinstance(since, int)
        ):
            raise ListDeltaRefused("a list delta must name the list and carry integer versions")
        if not isinstance(added, list) or not isinstance(removed, list):
            raise ListDeltaRefused("a list delta's added and removed must be lists")
        with self._lock:
            held = self._deny_version if kind == "deny" else self._action_version
            if version == held and not full:
                return False
            if not full and since != held:
                raise ListDeltaRefused(
                    f"{kind} delta since {since} does not continue version {held}"
                )
            if version < held:
                # Even a full list may not go back: a replayed old list could un-deny a stolen card.
                raise ListDeltaRefused(f"{kind} list goes back from version {held} to {version}")
            if kind == "deny":
                deny = set() if full else set(self._deny)
                deny.difference_update(str(card) for card in removed)
                deny.update(str(card) for card in added)
                if len(deny) > DENY_ENTRIES_MAX:
                    raise ListDeltaRefused(f"deny list longer than {DENY_ENTRIES_MAX}")
                self._deny, self._deny_version = deny, version
            else:
                actions = {} if full else dict(self._actions)
                for load_id in removed:
                    actions.pop(str(load_id), None)
                for item in added:
                    load = _pending_load(item)
                    actions[load.load_id] = load
                if len(actions) > ACTIONS_MAX:
                    raise ListDeltaRefused(f"action list longer than {ACTIONS_MAX}")
                self._actions, self._action_version = actions, version
            self._write()
        return True

    # --- persistence ---------------------------------------------------------------------------

    def _write(self) -> None:
        if self.path is None:
            return
        body = {
            "format": LISTS_FORMAT,
            "deny_version": self._deny_version,
            "deny": sorted(self._deny),
            "action_version": self._action_version,
            "actions": [
                {
                    "load_id": a.load_id,
                    "card_no": a.card_no,
                    "amount_fen": a.amount_fen,
                    "expires_at": a.expires_at.isoformat(),
                }
                for a in self._actions.values()
            ],
        }
        write_text_atomic(self.path, json.dumps(body), mode=MODE_PUBLIC)

    def _read(self) -> None:
        if self.path is None:
            raise InvariantError("lists read without a file")
        body = json.loads(self.path.read_text(encoding="utf-8"))
        if body.get("format") != LISTS_FORMAT:
            raise ListDeltaRefused(f"{self.path} is not a {LISTS_FORMAT} file")
        self._deny = set(body["deny"])
        self._deny_version = int(body["deny_version"])
        self._actions = {a["load_id"]: _pending_load(a) for a in body["actions"]}
        self._action_version = int(body["action_version"])


def _pending_load(item: object) -> PendingLoad:
    if not isinstance(item, dict):
        raise ListDeltaRefused("an action list entry must be an object")
    try:
        expires = datetime.fromisoformat(str(item["expires_at"]).replace("Z", "+00:00"))
        amount = item["amount_fen"]
        if not isinstance(amount, int) or amount <= 0:
            raise ValueError("amount")
        return PendingLoad(str(item["load_id"]), str(item["card_no"]), amount, expires)
    except (KeyError, ValueError):
        raise ListDeltaRefused(
            "an action list entry needs load_id, card_no, amount_fen > 0, expires_at"
        ) from None
