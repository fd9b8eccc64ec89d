"""Reliability tests: crashes, outages, store failures, graceful shutdown, several instances.

Every test here runs paybridge as a real process (or a real Bridge against a real store) and a
real local receiver that verifies Standard Webhooks signatures and dedupes on ``webhook-id``.
"""
