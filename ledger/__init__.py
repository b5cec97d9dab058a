"""A general double-entry ledger: ledgers, accounts, transfers, balances.

It knows nothing of cards, buses or HTTP and never imports the other onecard packages.
"""
