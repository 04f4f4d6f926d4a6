"""The view store: the tables projections write and queries read, behind one port."""
