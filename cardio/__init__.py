"""Card I/O: ISO 7816-4 APDUs, the PBOC/JT/T 978 electronic purse, its cryptography, transports.

It knows nothing of fares, money movement or the back office and never imports the other onecard packages.

Modules (each documents its public API in its docstring):
- `cardio.crypto`    pure purse cryptography: diversification, session keys, MAC1/MAC2/TAC, TAC checks
- `cardio.keystore`  the issuer master key store file (JSON, 0600) and per-card keys
- `cardio.errors`    the error family; status words -> typed exceptions from one table
- `cardio.apdu`      command/response APDUs, the `Transport` protocol, 61xx/6Cxx handling, BER-TLV
- `cardio.records`   byte layouts: 0015/0016/0017/0018/001A/001E, INITIALIZE/DEBIT/proof answers, CardType
- `cardio.purse`     the terminal side: `Purse(transport)` with every purse command
- `cardio.softcard`  the software card (card side); `cardio.cardfile` keeps it in CARD.json
- `cardio.inproc`    in-process transport (software card, removal and tear injection)
- `cardio.pcsc`      PC/SC transport via pyscard (the only module importing `smartcard`)
- `cardio.vpcd`      the bridge that plugs a software card into pcscd through vpcd
- `cardio.trace`     an APDU trace wrapper for any transport (names, lengths, SW; never data)
- `cardio.testing`   reference purchase/load flows with clear master keys (tests, bench, demo only)
"""
