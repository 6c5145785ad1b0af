"""Utilities (environment checks, torch compatibility helpers)."""
