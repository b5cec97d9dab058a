"""A terminal's configuration file (TOML) and provisioning of its SAM key file and credential.

Provisioning copies only the purchase (and, for a kiosk, load) master key into the SAM key file;
the issuer key store itself never goes to a terminal. Nothing here prints key material.

    terminal_id = "000001000050"
    data_dir = "var/terminals/000001000050"      # journal.db, sam-serial, lists.json
    sam_keys = "var/terminals/000001000050/sam-keys.json"
    sam_reader = ""                                # optional: a PC/SC reader slot with a PSAM instead
    credential = "var/terminals/000001000050/credential.json"
    clearing_url = "http://127.0.0.1:8000"        # optional: no uploads without it
    server_public_key = "<64 hex>"               # the service's list-signing key (GET /v1/lists/public-key)
    [bus]
    feed = ""                                      # empty: the sample feed in the package
    route_id = "1"
    stop_id = "old_town"
    skip_unusable_rules = false                    # true: run on a feed whose only problems are
                                                   # rules onecard cannot use, without them
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cardio.atomicfile import MODE_PUBLIC, write_text_atomic
from cardio.keystore import KeyStore
from terminals.errors import TerminalError
from terminals.fares.feed import FareFeed, load_feed, load_sample_feed
from terminals.sam import provision_sam_keys
from terminals.signing import new_credential, write_credential

CONFIG_BYTES_MAX = 64 * 1024


class ConfigError(TerminalError):
    """The terminal configuration is missing a field or names something that does not exist."""

    code = "config_error"


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    terminal_id: str
    data_dir: Path
    sam_keys: Path
    credential: Path
    clearing_url: str | None
    server_public_key: str
    feed: str
    route_id: str
    stop_id: str
    sam_reader: str = ""
    skip_unusable_rules: bool = False
    vehicle_id: str = ""  # [bus] vehicle_id: the bus this validator rides ("" for a gate)

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.db"

    @property
    def sam_serial_path(self) -> Path:
        return self.data_dir / "sam-serial"

    @property
    def lists_path(self) -> Path:
        return self.data_dir / "lists.json"

    def load_feed(self) -> FareFeed:
        if not self.feed:
            return load_sample_feed()
        return load_feed(self.feed, skip_unusable_rules=self.skip_unusable_rules)


def is_terminal_id(text: str) -> bool:
    return len(text) == 12 and all(c in "0123456789ABCDEF" for c in text)


def load_config(path: Path | str) -> TerminalConfig:
    path = Path(path)
    try:
        if path.stat().st_size > CONFIG_BYTES_MAX:
            raise ConfigError(f"{path} is larger than {CONFIG_BYTES_MAX} bytes")
        body = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no terminal configuration at {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (UTF-8 TOML) file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a terminal configuration") from None
    base = path.parent

    def need(key: str) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: `{key}` is required")
        return value

    def resolve(value: str) -> Path:
        candidate = Path(value)
        return candidate if candidate.is_absolute() else (base / candidate)

    terminal_id = need("terminal_id").upper()
    if not is_terminal_id(terminal_id):
        raise ConfigError(f"{path}: terminal_id must be 12 hex digits")
    bus = body.get("bus", {})
    return TerminalConfig(
        terminal_id=terminal_id,
        data_dir=resolve(need("data_dir")),
        sam_keys=resolve(need("sam_keys")),
        credential=resolve(need("credential")),
        clearing_url=body.get("clearing_url") or None,
        server_public_key=str(body.get("server_public_key") or "00" * 32),
        feed=str(resolve(bus["feed"])) if bus.get("feed") else "",
        route_id=str(bus.get("route_id", "1")),
        stop_id=str(bus.get("stop_id", "")),
        sam_reader=str(body.get("sam_reader") or ""),
        skip_unusable_rules=bus.get("skip_unusable_rules") is True,
        vehicle_id=str(bus.get("vehicle_id", "")),
    )


def _toml_string(value: str) -> str:
    """A TOML basic string of `value`: the escapes JSON writes are valid in TOML too."""
    return json.dumps(value)


def provision_terminal(
    issuer: KeyStore,
    terminal_id: str,
    out_dir: Path | str,
    *,
    with_load: bool = False,
    clearing_url: str = "",
    server_public_key: str = "",
    route_id: str = "1",
    stop_id: str = "old_town",
) -> tuple[Path, str]:
    """Write the SAM key file, the credential and a config; returns (config path, public key hex)."""
    terminal_id = terminal_id.upper()
    if not is_terminal_id(terminal_id):  # before any file is made: a refusal leaves nothing
        raise ConfigError(f"terminal id {terminal_id!r} must be 12 hex digits")
    routes = load_sample_feed().route_type  # the feed the config names (feed = "")
    if routes and route_id not in routes:  # its bus would refuse every tap (no fare)
        raise ConfigError(
            f"route {route_id!r} is not in the fare feed (its routes: {', '.join(sorted(routes))})"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    provision_sam_keys(
        issuer, bytes.fromhex(terminal_id), out / "sam-keys.json", with_load=with_load
    )
    credential = new_credential(terminal_id)
    write_credential(credential, out / "credential.json")
    # The public half, for the registry (`--public-key "$(cat public-key.hex)"`); not a secret.
    (out / "public-key.hex").write_text(credential.public_key_hex + "\n", encoding="ascii")
    config = out / "terminal.toml"
    lines = [
        f"terminal_id = {_toml_string(terminal_id)}",
        'data_dir = "."',
        'sam_keys = "sam-keys.json"',
        'credential = "credential.json"',
        f"clearing_url = {_toml_string(clearing_url)}",
        f"server_public_key = {_toml_string(server_public_key)}",
        "",
        "[bus]",
        'feed = ""',
        f"route_id = {_toml_string(route_id)}",
        f"stop_id = {_toml_string(stop_id)}",
        "",
    ]
    write_text_atomic(config, "\n".join(lines), mode=MODE_PUBLIC)
    return config, credential.public_key_hex
