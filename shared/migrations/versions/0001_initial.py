"""The initial schema: catalog, stock, idempotency, orders, reconciliation.

Revision ID: 0001
Revises:
Create Date: 2024-01-20 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _stamp(name: str = "created_at") -> sa.Column[datetime]:
    """A timestamptz column that defaults to the transaction's now()."""
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def _serial_id() -> sa.Column[int]:
    """The surrogate key `id`: a bigint that, as the table's single-column primary key, becomes a bigserial."""
    return sa.Column("id", sa.BigInteger(), nullable=False)


def _identifier(name: str, nullable: bool = False) -> sa.Column[str]:
    """A varchar(100): the width of every SKU, order, event, customer, warehouse and location id."""
    return sa.Column(name, sa.String(length=100), nullable=nullable)


def upgrade() -> None:
    """Create every table, constraint and index of the models as of this revision."""
    _create_catalog()
    _create_inventory()
    _create_events()
    _create_orders()
    _create_reconciliation()


def downgrade() -> None:
    """Drop everything upgrade() created; indexes and constraints go with their tables."""
    for table in (
        "reconciliation_corrections",
        "reconciliation_runs",
        "stock_holds",
        "order_lines",
        "orders",
        "processed_events",
        "stock_changes",
        "stock_levels",
        "media",
        "variants",
        "product_groups",
        "categories",
    ):
        op.drop_table(table)


def _create_catalog() -> None:
    op.create_table(
        "categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        _stamp(),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["categories.id"], name=op.f("fk_categories_parent_id_categories"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
        sa.UniqueConstraint(
            "parent_id", "name", name=op.f("uq_categories_parent_id_name"), postgresql_nulls_not_distinct=True
        ),
    )
    op.create_index(op.f("ix_categories_parent_id"), "categories", ["parent_id"])

    op.create_table(
        "product_groups",
        sa.Column("product_group_id", sa.String(length=50), nullable=False),
        sa.Column("group_name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tax_hsn", sa.String(length=20), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("category_path", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("erp_updated_at", sa.DateTime(timezone=True), nullable=False),
        _stamp(),
        _stamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["category_id"], ["categories.id"], name=op.f("fk_product_groups_category_id_categories"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("product_group_id", name=op.f("pk_product_groups")),
    )
    op.create_index(op.f("ix_product_groups_category_id"), "product_groups", ["category_id"])
    op.create_index(
        "ix_product_groups_category_path", "product_groups", ["category_path"], postgresql_using="gin"
    )

    op.create_table(
        "variants",
        _identifier("sku"),
        sa.Column("product_group_id", sa.String(length=50), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("mrp", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("erp_updated_at", sa.DateTime(timezone=True), nullable=False),
        _stamp(),
        _stamp("updated_at"),
        sa.CheckConstraint("price >= 0", name=op.f("ck_variants_price_not_negative")),
        sa.CheckConstraint("mrp >= 0", name=op.f("ck_variants_mrp_not_negative")),
        sa.ForeignKeyConstraint(
            ["product_group_id"],
            ["product_groups.product_group_id"],
            name=op.f("fk_variants_product_group_id_product_groups"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_variants")),
    )
    op.create_index(op.f("ix_variants_product_group_id"), "variants", ["product_group_id"])
    op.create_index(
        "ix_variants_attributes",
        "variants",
        ["attributes"],
        postgresql_using="gin",
        postgresql_ops={"attributes": "jsonb_path_ops"},
    )

    op.create_table(
        "media",
        _serial_id(),
        _identifier("sku"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("is_main", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("byte_size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("downloaded_at", sa.DateTime(timezone=True), nullable=True),
        _stamp(),
        _stamp("updated_at"),
        sa.CheckConstraint("position >= 0", name=op.f("ck_media_position_not_negative")),
        sa.CheckConstraint("status IN ('pending', 'confirmed', 'failed')", name=op.f("ck_media_status")),
        sa.CheckConstraint("byte_size >= 0", name=op.f("ck_media_byte_size_not_negative")),
        sa.ForeignKeyConstraint(["sku"], ["variants.sku"], name=op.f("fk_media_sku_variants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
        sa.UniqueConstraint("sku", "position", name=op.f("uq_media_sku_position")),
    )
    op.create_index("ix_media_pending", "media", ["id"], postgresql_where=sa.text("status = 'pending'"))


def _create_inventory() -> None:
    op.create_table(
        "stock_levels",
        _identifier("sku"),
        sa.Column("erp_quantity", sa.Integer(), nullable=False),
        sa.Column("erp_as_of", sa.DateTime(timezone=True), nullable=False),
        _stamp(),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_stock_levels")),
    )

    op.create_table(
        "stock_changes",
        _serial_id(),
        _identifier("sku"),
        _identifier("event_id"),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("delta", sa.Integer(), nullable=True),
        sa.Column("resulting_quantity", sa.Integer(), nullable=True),
        _identifier("location_id", nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("erp_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        _stamp("recorded_at"),
        sa.CheckConstraint("kind IN ('absolute', 'delta')", name=op.f("ck_stock_changes_kind")),
        sa.CheckConstraint("outcome IN ('applied', 'stale', 'duplicate')", name=op.f("ck_stock_changes_outcome")),
        sa.CheckConstraint(
            "kind = 'absolute' AND quantity IS NOT NULL AND delta IS NULL"
            " OR kind = 'delta' AND delta IS NOT NULL AND quantity IS NULL",
            name=op.f("ck_stock_changes_amount_matches_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_changes")),
    )
    op.create_index(op.f("ix_stock_changes_event_id"), "stock_changes", ["event_id"])
    op.create_index(
        "ix_stock_changes_sku_recorded_at", "stock_changes", ["sku", sa.literal_column("recorded_at DESC")]
    )


def _create_events() -> None:
    op.create_table(
        "processed_events",
        _identifier("event_id"),
        sa.Column("event_type", sa.String(length=50), nullable=False),
        _stamp("processed_at"),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_processed_events")),
    )
    op.create_index(op.f("ix_processed_events_processed_at"), "processed_events", ["processed_at"])


def _create_orders() -> None:
    op.create_table(
        "orders",
        _identifier("order_id"),
        sa.Column("order_date", sa.DateTime(timezone=True), nullable=False),
        _identifier("customer_ref"),
        _identifier("warehouse_id", nullable=True),
        sa.Column("status", sa.String(length=20), server_default="received", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        _stamp(),
        _stamp("updated_at"),
        sa.CheckConstraint(
            "status IN ('received', 'synced', 'pending_sync', 'local_only', 'rejected')",
            name=op.f("ck_orders_status"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_orders_attempts_not_negative")),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_orders")),
    )
    op.create_index(
        "ix_orders_due",
        "orders",
        ["next_attempt_at"],
        postgresql_where=sa.text("status IN ('pending_sync', 'local_only')"),
    )

    op.create_table(
        "order_lines",
        _identifier("order_id"),
        sa.Column("line_no", sa.Integer(), nullable=False),
        _identifier("sku"),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.CheckConstraint("line_no >= 1", name=op.f("ck_order_lines_line_no_positive")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_order_lines_quantity_positive")),
        sa.CheckConstraint("unit_price >= 0", name=op.f("ck_order_lines_unit_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.order_id"], name=op.f("fk_order_lines_order_id_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("order_id", "line_no", name=op.f("pk_order_lines")),
    )

    op.create_table(
        "stock_holds",
        _serial_id(),
        _identifier("order_id"),
        _identifier("sku"),
        sa.Column("quantity", sa.Integer(), nullable=False),
        _stamp("held_at"),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("release_reason", sa.String(length=50), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_stock_holds_quantity_positive")),
        sa.CheckConstraint(
            "(released_at IS NULL) = (release_reason IS NULL)", name=op.f("ck_stock_holds_release_has_reason")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.order_id"], name=op.f("fk_stock_holds_order_id_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_holds")),
    )
    op.create_index(op.f("ix_stock_holds_order_id"), "stock_holds", ["order_id"])
    op.create_index(
        "ix_stock_holds_sku_open", "stock_holds", ["sku"], postgresql_where=sa.text("released_at IS NULL")
    )


def _create_reconciliation() -> None:
    op.create_table(
        "reconciliation_runs",
        _serial_id(),
        _stamp("started_at"),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="running", nullable=False),
        sa.Column("checked", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("mismatched", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("corrected", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("missing_in_commerce", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("missing_in_erp", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')", name=op.f("ck_reconciliation_runs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
    )
    op.create_index(op.f("ix_reconciliation_runs_started_at"), "reconciliation_runs", ["started_at"])

    op.create_table(
        "reconciliation_corrections",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        _identifier("sku"),
        sa.Column("old_qty", sa.Integer(), nullable=True),
        sa.Column("new_qty", sa.Integer(), nullable=False),
        _stamp("corrected_at"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.id"],
            name=op.f("fk_reconciliation_corrections_run_id_reconciliation_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "sku", name=op.f("pk_reconciliation_corrections")),
    )
