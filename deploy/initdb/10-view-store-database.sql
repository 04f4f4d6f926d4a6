-- The view store lives in a database of its own beside the event store's (POSTGRES_DB), so the
-- two can later move to separate servers by changing CRM_READ_STORE_URL alone.
CREATE DATABASE crm_views OWNER crm;
