"""The quarantine: records the engine could not clear, and what finance staff did with them."""
