"""The finance console's figures: today at a glance and the charts' series (reads only)."""
