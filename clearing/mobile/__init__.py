"""The mobile channel: residents top up their cards through Stripe, delivered at the next tap."""
