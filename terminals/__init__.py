"""Bus validators, clinic terminals and load kiosks: fares, SAM, tap flow, offline journal, upload.

Builds on cardio only; talks to the clearing service over HTTP, never by import.

Modules (public API):
- `terminals.fares` — GTFS-Fares v2 feed loading/validation (`load_feed`, `validate_feed`,
  `load_sample_feed`) and the pure engine (`price_tap`, `price_leg`, `price_taps`, `RideState`).
- `terminals.capp` — the transit state's byte layout in the card's CAPP record 001A.
- `terminals.sam` — `SoftwareSam` (PSAM 80 70 / 80 72 over APDUs), `Psam` (terminal side, any
  transport), `LoadHost`, SAM key files (`provision_sam_keys`, `load_sam_keys`), `SerialStore`.
- `terminals.journal` — `Journal` (append-only SQLite WAL), `TapRecord`, upload `Batch`es.
- `terminals.terminal` — `Validator` (bus), `ClinicTerminal`, `TapResult`, `TapOutcome`.
- `terminals.kiosk` — `LoadKiosk` (pending top-ups onto the card).
- `terminals.lists` — `ListStore` (signed, versioned deny/action list deltas).
- `terminals.client` / `terminals.uploader` / `terminals.signing` — the HTTP protocol client.
- `terminals.fleet` — `Fleet` / `simulate_day`: N simulated buses for tests and the demo.
- `terminals.config` — a terminal's TOML configuration and provisioning.
"""
