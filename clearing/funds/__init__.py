"""Money the funds pay in: the medical-insurance fund and the concession subsidy fund settle their
claims (`insurer:<scheme>`, `subsidy:<scheme>`) by bank transfer into the escrow account.

Public API: `clearing.funds.service.book_fund_payment` and `book_receipts` (a bank statement's
credits: those from a fund are booked bank:escrow <- insurer|subsidy:<scheme>, once per bank
reference); the funds' bank details are read in `repository`; the pure parts in `receipts`.
"""
