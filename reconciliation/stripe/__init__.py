"""Matcher 4, Stripe: its balance transactions against the top-ups and bill payments clearing
posted (fees included), and its payouts against the bank statement (through matcher 5)."""
