-- Customers' data keys (crm/personal/postgres_keys.py) in a database of their own, apart from the
-- events: a key deleted here forgets its customer, and this database is backed up with the
-- master key, not with the events.
CREATE DATABASE crm_keys OWNER crm;
