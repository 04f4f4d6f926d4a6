"""The event store port and its adapters: the source of truth of the whole system."""
