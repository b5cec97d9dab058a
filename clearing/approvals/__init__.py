"""Second-person approval: write-offs, refunds and early settlement wait for another officer."""
