"""Shared kernel of the CRM case-history system: errors, envelope, ports and adapters."""
