"""Pure projections (events to the views people read) and the runners that feed them."""
