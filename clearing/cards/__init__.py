"""The card workflow: lost, blocked, unblocked, replaced and refunded cards (clearing/cards/service.py)."""
