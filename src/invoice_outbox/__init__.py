"""invoice-outbox: delivers practices' invoices to external systems and explains failures."""

__version__ = "0.1.0"
