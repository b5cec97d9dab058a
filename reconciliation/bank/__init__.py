"""The bank side of reconciliation: the escrow account's ISO 20022 camt.053 statements, matched
against settlement payouts (matcher 5) and against what the funds owe (matcher 7).

Parsing, storing and matching only: money a fund pays is booked by clearing (clearing.funds),
never here.
"""
