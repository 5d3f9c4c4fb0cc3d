"""The catalog the ERP owns: product groups, their categories, variants and media."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    column,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from erp_sync.shared.db import Base, CreatedAt, Money, UpdatedAt
from erp_sync.shared.models.states import MediaStatus, one_of

SKU_LENGTH = 100


class Category(Base):
    """One node of the category tree; the ERP sends each group's path from the root."""

    __tablename__ = "categories"
    __table_args__ = (
        # Without NULLS NOT DISTINCT two roots of the same name could coexist.
        UniqueConstraint("parent_id", "name", postgresql_nulls_not_distinct=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"), index=True)
    created_at: Mapped[CreatedAt]

    parent: Mapped[Category | None] = relationship(remote_side="Category.id", back_populates="children")
    children: Mapped[list[Category]] = relationship(back_populates="parent")


class ProductGroup(Base):
    """A product as the ERP groups it (e.g. iPhone 15), the parent of its variants."""

    __tablename__ = "product_groups"
    __table_args__ = (
        # GIN serves "everything under Electronics > Smartphones" via category_path @> ARRAY[...].
        Index("ix_product_groups_category_path", "category_path", postgresql_using="gin"),
    )

    product_group_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    tax_hsn: Mapped[str | None] = mapped_column(String(20))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    category_path: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id", ondelete="SET NULL"), index=True)
    erp_updated_at: Mapped[datetime]
    # When the door received the update of erp_updated_at, which settles a tie of ERP timestamps
    # (shared/receipt_stamp.py); NULL where unknown (a row of before 0024).
    received_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    category: Mapped[Category | None] = relationship()
    variants: Mapped[list[Variant]] = relationship(back_populates="group", order_by="Variant.sku")


class Variant(Base):
    """One sellable SKU of a product group, with its price and filterable attributes."""

    __tablename__ = "variants"
    __table_args__ = (
        CheckConstraint(column("price") >= 0, name="price_not_negative"),
        CheckConstraint(column("mrp") >= 0, name="mrp_not_negative"),
        # jsonb_path_ops: smaller and faster than the default for the @> of "filter by".
        Index(
            "ix_variants_attributes",
            "attributes",
            postgresql_using="gin",
            postgresql_ops={"attributes": "jsonb_path_ops"},
        ),
    )

    sku: Mapped[str] = mapped_column(String(SKU_LENGTH), primary_key=True)
    product_group_id: Mapped[str] = mapped_column(
        ForeignKey("product_groups.product_group_id", ondelete="RESTRICT"), index=True
    )
    display_name: Mapped[str] = mapped_column(String(255))
    price: Mapped[Money]
    mrp: Mapped[Money | None]
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    erp_updated_at: Mapped[datetime]
    # When the door received the update of erp_updated_at, which settles a tie of ERP timestamps
    # (shared/receipt_stamp.py); NULL where unknown (a row of before 0024).
    received_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    group: Mapped[ProductGroup] = relationship(back_populates="variants")
    media: Mapped[list[Media]] = relationship(
        back_populates="variant", order_by="Media.position", cascade="all, delete-orphan"
    )


class Media(Base):
    """One image of a variant and the state of its download by the media worker."""

    __tablename__ = "media"
    __table_args__ = (
        UniqueConstraint("sku", "position"),
        CheckConstraint(column("position") >= 0, name="position_not_negative"),
        one_of(MediaStatus),
        CheckConstraint(column("byte_size") >= 0, name="byte_size_not_negative"),
        # The media worker's queue of work: only the few rows still to download.
        Index("ix_media_pending", "id", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sku: Mapped[str] = mapped_column(ForeignKey("variants.sku", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    is_main: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    status: Mapped[str] = mapped_column(String(16), server_default=MediaStatus.PENDING.value)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    content_type: Mapped[str | None] = mapped_column(String(255))
    byte_size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    downloaded_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    variant: Mapped[Variant] = relationship(back_populates="media")
