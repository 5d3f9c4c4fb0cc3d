"""Alembic migrations of the erp-sync schema, shipped inside the package."""
