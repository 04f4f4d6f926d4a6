"""The command services (customer, case, feedback) and the timeline query service."""
