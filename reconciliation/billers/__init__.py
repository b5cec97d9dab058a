"""Matcher 6, billers: each biller's daily confirmation file against the bills residents paid."""
