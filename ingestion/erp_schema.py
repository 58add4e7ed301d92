"""The ERP's CRM tables as `crm-erd.md` describes them (names and spellings kept, including
`dicount_calculation` and `order`).

The generator creates these tables; the sync checks that the required ones exist. The sync
copies whatever columns the source really has, so extra columns never break it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)

#: Tables the pipeline cannot work without (docs/contract.md section 2).
REQUIRED_TABLES: tuple[str, ...] = (
    "customer_groups",
    "contacts",
    "contact_accounts",
    "crm_leads",
    "crm_pipeline_stages",
    "crm_deals",
    "crm_campaigns",
    "crm_campaign_performance",
)

#: Tables used when present. When the source lacks them, the sync lands them empty.
#: `auth_users` is the auth service's user table (crm-erd.md's FK target of the owner ids);
#: with it, owners are shown by name.
OPTIONAL_TABLES: tuple[str, ...] = ("businesses", "branches", "auth_users")

SOURCE_TABLES: tuple[str, ...] = REQUIRED_TABLES + OPTIONAL_TABLES

#: The secondary indexes `crm-erd.md` lists, per table: (index name, column). The ERP has them,
#: so the generator builds them too (after loading, which is faster than loading into them);
#: the sync's cursor reads (`updated_at >= …`) rely on `idx_*_updated_at` as they would in
#: production.
ERD_INDEXES: dict[str, tuple[tuple[str, str], ...]] = {
    "customer_groups": (
        ("idx_customer_group_name", "group_name"),
        ("idx_customer_group_discount", "dicount_calculation"),
    ),
    "contacts": (
        ("idx_contact_id", "contact_id"),
        ("idx_contact_type", "contact_type"),
        ("idx_contact_user", "user_id"),
        ("idx_contact_business", "business_id"),
        ("idx_contact_branch", "branch_id"),
        ("idx_contact_customer_group", "customer_group_id"),
        ("idx_contact_account_type", "account_type"),
        ("idx_contact_phone", "phone"),
        ("idx_contact_deleted", "is_deleted"),
        ("idx_contact_added_on", "added_on"),
    ),
    "contact_accounts": (
        ("idx_contact_account_contact", "contact_id"),
    ),
    "crm_leads": (
        ("idx_lead_status", "status"),
        ("idx_lead_contact", "contact_id"),
        ("idx_lead_source", "source"),
        ("idx_lead_owner", "owner_id"),
        ("idx_lead_created_at", "created_at"),
        ("idx_lead_updated_at", "updated_at"),
    ),
    "crm_pipeline_stages": (
        ("idx_pipeline_stage_name", "name"),
        ("idx_pipeline_stage_order", "order"),
        ("idx_pipeline_stage_is_won", "is_won"),
        ("idx_pipeline_stage_is_lost", "is_lost"),
    ),
    "crm_deals": (
        ("idx_deal_stage", "stage_id"),
        ("idx_deal_contact", "contact_id"),
        ("idx_deal_lead", "lead_id"),
        ("idx_deal_owner", "owner_id"),
        ("idx_deal_close_date", "close_date"),
        ("idx_deal_created_at", "created_at"),
        ("idx_deal_updated_at", "updated_at"),
    ),
    "crm_campaigns": (
        ("idx_campaign_type", "campaign_type"),
        ("idx_campaign_status", "status"),
        ("idx_campaign_start_date", "start_date"),
        ("idx_campaign_end_date", "end_date"),
        ("idx_campaign_is_active", "is_active"),
    ),
    "crm_campaign_performance": (
        ("idx_campaign_performance_campaign", "campaign_id"),
        ("idx_campaign_performance_date", "date"),
    ),
}


def _money(precision: int = 14) -> Numeric:
    return Numeric(precision, 2, asdecimal=True)


def _tstz() -> DateTime:
    return DateTime(timezone=True)


def build_metadata(schema: str | None = None) -> MetaData:
    """A fresh `MetaData` with every ERP table, optionally in `schema` (PostgreSQL)."""
    md = MetaData(schema=schema)
    Table(
        "businesses", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("name", String(255)),
    )
    Table(
        "branches", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("business_id", Integer),
        Column("name", String(255)),
    )
    Table(
        "auth_users", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("username", String(150)),
        Column("first_name", String(150)),
        Column("last_name", String(150)),
        Column("email", String(254)),
    )
    Table(
        "customer_groups", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("group_name", String(100)),
        Column("dicount_calculation", String(100)),
        Column("amount", _money(14)),
    )
    Table(
        "contacts", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("contact_id", String(100), nullable=False),
        Column("contact_type", String(100)),
        Column("user_id", Integer),
        Column("business_id", Integer),
        Column("branch_id", Integer),
        Column("designation", String(100)),
        Column("customer_group_id", Integer),
        Column("account_type", String(100)),
        Column("tax_number", String(100)),
        Column("business_name", String(100)),
        Column("business_address", String(100)),
        Column("alternative_contact", String(15)),
        Column("phone", String(15)),
        Column("credit_limit", _money(14)),
        Column("added_on", Date),
        Column("is_deleted", Boolean),
        Column("created_by_id", Integer),
    )
    Table(
        "contact_accounts", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("contact_id", Integer),
        Column("account_balance", _money(14)),
        Column("advance_balance", _money(14)),
        Column("total_sale_due", _money(14)),
        Column("total_sale_return_due", _money(14)),
    )
    Table(
        "crm_leads", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("contact_id", Integer),
        Column("source", String(100)),
        Column("status", String(20)),
        Column("value", _money(15)),
        Column("owner_id", Integer),
        Column("created_at", _tstz()),
        Column("updated_at", _tstz()),
    )
    Table(
        "crm_pipeline_stages", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("name", String(100), nullable=False),
        Column("order", Integer),
        Column("is_won", Boolean),
        Column("is_lost", Boolean),
    )
    Table(
        "crm_deals", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("title", String(255), nullable=False),
        Column("contact_id", Integer),
        Column("lead_id", Integer),
        Column("stage_id", Integer),
        Column("amount", _money(15)),
        Column("close_date", Date),
        Column("owner_id", Integer),
        Column("created_at", _tstz()),
        Column("updated_at", _tstz()),
    )
    Table(
        "crm_campaigns", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("name", String(255), nullable=False),
        Column("campaign_type", String(50)),
        Column("status", String(20)),
        Column("priority", Integer),
        Column("title", String(200)),
        Column("description", Text),
        Column("image", String(255)),
        Column("badge", String(200)),
        Column("seller_id", Integer),
        Column("branch_id", Integer),
        Column("start_date", _tstz()),
        Column("end_date", _tstz()),
        Column("is_active", Boolean),
        Column("is_default", Boolean),
        Column("impressions", Integer),
        Column("clicks", Integer),
        Column("conversions", Integer),
        Column("revenue_generated", _money(15)),
        Column("budget", _money(15)),
        Column("max_impressions", Integer),
        Column("max_clicks", Integer),
        Column("landing_page_url", String(255)),
        Column("cta_text", String(100)),
        Column("created_by_id", Integer),
        Column("created_at", _tstz()),
        Column("updated_at", _tstz()),
    )
    Table(
        "crm_campaign_performance", md,
        Column("id", BigInteger, primary_key=True, autoincrement=False),
        Column("campaign_id", Integer),
        Column("date", Date),
        Column("impressions", Integer),
        Column("clicks", Integer),
        Column("conversions", Integer),
        Column("revenue", _money(15)),
        Column("created_at", _tstz()),
    )
    return md


def erd_indexes(md: MetaData) -> list[Index]:
    """`ERD_INDEXES` as SQLAlchemy indexes on the tables of `md` (create them with
    `index.create(connection)`)."""
    indexes = []
    for table in md.tables.values():
        for name, column in ERD_INDEXES.get(table.name, ()):
            indexes.append(Index(name, table.c[column]))
    return indexes
