"""Lateral spine radiograph analysis (issue #6)."""
