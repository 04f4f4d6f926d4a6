-- The relay's and the deadline worker's checkpoints, and the advisory locks that elect their
-- active copies, in a database of their own: the view store's can then be dropped, rebuilt or
-- moved without taking the relay's position or the saved timers with it.
CREATE DATABASE crm_checkpoints OWNER crm;
