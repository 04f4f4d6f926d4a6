"""The case service."""
