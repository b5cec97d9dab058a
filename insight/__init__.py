"""Insight from card data: ridership, journeys and trends published as privacy-safe aggregates.

Reads cleared taps (by table name, in its own SQL) and the fare feed only. Nothing leaves this
package that describes fewer than k riders, every published count carries differentially private
noise, and no card number (nor any stable key of a card) ever appears in an output.
"""
