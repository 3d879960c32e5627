"""Starling fixtures (filled in by the Starling work)."""
