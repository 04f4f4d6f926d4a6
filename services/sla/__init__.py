"""SLA policies and the business-hours arithmetic that decides when a case's targets fall due."""
