"""Utilities (demo data, checkpoint helpers)."""
