"""Bus validators, clinic terminals and load kiosks: fares, SAM, tap flow, offline journal, upload.

Builds on cardio only; talks to the clearing service over HTTP, never by import.
"""
