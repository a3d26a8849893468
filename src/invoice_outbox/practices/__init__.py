"""Practices by name: the practices table (id, name) and reading names for pages and lists."""
