"""Builders of source payloads in each source's documented shape (demo, tests, simulator)."""
