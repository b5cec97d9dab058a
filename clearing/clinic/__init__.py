"""Clinic co-payments: the medical-insurance adapter and the visit split terminals ask for."""
