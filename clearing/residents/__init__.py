"""Residents: accounts (sign-up, login, refresh, logout), the cards they link and what they may
read of them. A resident sees only the cards they have linked; other workflows (top-ups, bills)
ask `service.require_linked_card` before acting for a resident."""
