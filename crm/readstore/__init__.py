"""The read store port and its adapters: where projections keep the views people read."""
