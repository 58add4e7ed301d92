"""PostgreSQL warehouse roles: a pipeline writer, a dashboard reader, tenant-scoped analysts.

`crm-analytics roles` runs this once (and again whenever the roles change) as a superuser:

- the **writer** owns every schema the pipeline writes (`raw`, the dbt schemas, `meta`) and
  everything in them, so the pipeline runs as the writer;
- the **reader** (the dashboards) may read `marts` and `meta` and nothing else, and writes
  nothing;
- each **analyst** may read the marts' rows of its own businesses only: row-level security on
  `business_id`, forced on the tables' owner too, so no role but the writer (owner) and the
  reader ever reads a mart without a policy.

Who is who lives in the warehouse, in the schema `crm_access` (owned by the superuser, not by
the writer, so the pipeline cannot widen anybody's scope): `crm_access.roles(role_name, kind)`
and `crm_access.tenant_roles(role_name, business_id)`. The policies themselves are written by
one PL/pgSQL function, `crm_access.secure_table(regclass)`, installed here. dbt replaces every
mart table on each build (and with it grants and policies), so each mart's dbt post-hook
(`crm_secure_mart`, `dbt_project/macros/warehouse_security.sql`) calls the same function inside
the transaction that swaps the table in: the new table is never visible without its policies.
Without `roles` ever having run the function does not exist and the hook does nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from crm_core.errors import CrmError, first_line
from crm_core.urls import WarehouseTarget

#: The schema holding the role registry and the policy function (owned by the admin).
ACCESS_SCHEMA = "crm_access"

#: Schemas the pipeline writes beyond dbt's: the ERP copy and event files (`raw`, also dbt's
#: source schema) and the run log (`meta`, orchestration/run_log.py).
LOADER_SCHEMAS = ("raw", "meta")

#: What the dashboards read (dashboards/data.py): the marts and the run log.
READER_SCHEMAS = ("marts", "meta")

#: Schema of the tenant-scoped tables.
MARTS_SCHEMA = "marts"

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# The policy function: one place that says what each kind of role may see in a mart table.
# It runs with the caller's rights: the superuser (here) or the table's owner (dbt's hook).
SECURE_TABLE_FUNCTION = """
create or replace function crm_access.secure_table(rel regclass) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
    full_roles text;
    readers text;
    analysts text;
    tenant_keyed boolean;
begin
    select string_agg(quote_ident(r.role_name), ', ' order by r.role_name)
                filter (where r.kind = 'reader'),
           string_agg(quote_ident(r.role_name), ', ' order by r.role_name)
                filter (where r.kind = 'analyst')
      into readers, analysts
    from crm_access.roles as r
    where exists (select from pg_roles as pr where pr.rolname = r.role_name);
    select string_agg(distinct quote_ident(n), ', ') into full_roles
    from (
        select pg_get_userbyid(c.relowner) as n from pg_class as c where c.oid = rel
        union
        select r.role_name from crm_access.roles as r
        where r.kind = 'writer'
          and exists (select from pg_roles as pr where pr.rolname = r.role_name)
    ) as w;
    tenant_keyed := exists (
        select from pg_attribute as a
        where a.attrelid = rel and a.attname = 'business_id' and a.attnum > 0
          and not a.attisdropped);

    if readers is not null then
        execute format('grant select on %s to %s', rel, readers);
    end if;
    if not tenant_keyed then
        -- no business_id: no tenant can be told apart, so analysts get nothing (fail closed)
        if analysts is not null then
            execute format('revoke all on %s from %s', rel, analysts);
        end if;
        return;
    end if;

    execute format('alter table %s enable row level security', rel);
    execute format('alter table %s force row level security', rel);
    execute format('drop policy if exists crm_full_access on %s', rel);
    execute format('create policy crm_full_access on %s for all to %s using (true) '
                   'with check (true)', rel, full_roles);
    execute format('drop policy if exists crm_reader_rows on %s', rel);
    if readers is not null then
        execute format('create policy crm_reader_rows on %s for select to %s using (true)',
                       rel, readers);
    end if;
    execute format('drop policy if exists crm_tenant_rows on %s', rel);
    if analysts is not null then
        execute format(
            'create policy crm_tenant_rows on %s for select to %s using (business_id in ('
            'select t.business_id from crm_access.tenant_roles as t '
            'join pg_catalog.pg_roles as r on r.rolname = t.role_name '
            'where pg_catalog.pg_has_role(r.oid, ''USAGE'')))', rel, analysts);
        execute format('grant select on %s to %s', rel, analysts);
    end if;
end
$fn$
"""


@dataclass(frozen=True)
class RoleSpec:
    """What `crm-analytics roles` was asked for."""

    writer: str
    reader: str
    #: analyst role -> the business ids it may see
    analysts: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def all_roles(self) -> list[str]:
        return [self.writer, self.reader, *self.analysts]


def parse_analyst(text: str) -> tuple[str, tuple[int, ...]]:
    """`ROLE=ID[,ID…]` -> (role, ids); raises `ValueError` with a readable reason."""
    role, sep, ids = text.partition("=")
    if not sep or not ids.strip():
        raise ValueError(f"{text!r} is not ROLE=BUSINESS_ID[,BUSINESS_ID...]")
    try:
        numbers = tuple(sorted({int(part) for part in ids.split(",")}))
    except ValueError:
        raise ValueError(f"{text!r}: business ids must be whole numbers") from None
    return check_role_name(role.strip()), numbers


def check_role_name(name: str) -> str:
    """Role names are plain lower-case identifiers: no quoting surprises in GRANTs."""
    if not _ROLE_NAME.match(name):
        raise ValueError(f"{name!r} is not a role name (lower-case letters, digits, _; "
                         "at most 63)")
    return name


def pipeline_schemas(manifest: dict) -> list[str]:
    """Every schema the pipeline writes: dbt's (from its manifest) plus the loaders'."""
    schemas = set(LOADER_SCHEMAS)
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") in {"model", "snapshot", "seed"}:
            schemas.add(node["schema"])
    for source in manifest.get("sources", {}).values():
        schemas.add(source["schema"])
    return sorted(schemas)


def _dbt_manifest() -> dict:
    from orchestration.dbt_project import ensure_manifest

    return json.loads(ensure_manifest().read_text(encoding="utf-8"))


def apply_roles(target: WarehouseTarget, spec: RoleSpec) -> list[str]:
    """Create or update the roles and everything they may do, in one transaction.

    Returns what it did, a line per role, for the command to print."""
    if target.is_duckdb:
        raise CrmError("roles need a PostgreSQL warehouse; CRM_WAREHOUSE_URL is a DuckDB file "
                       "(DuckDB has no roles: protect the file and its serving copy instead)")
    names = spec.all_roles()
    if len(set(names)) != len(names):
        raise CrmError("roles: the writer, the reader and each analyst must be different roles")
    schemas = pipeline_schemas(_dbt_manifest())
    try:
        with psycopg.connect(target.conninfo(), connect_timeout=10) as conn:
            _check_admin(conn)
            _create_roles(conn, spec)
            _apply(conn, spec, schemas)
            conn.commit()
    except psycopg.Error as exc:
        raise CrmError(f"roles: warehouse {target.describe()}: {first_line(exc)}") from None
    lines = [f"writer   {spec.writer}: owns schemas {', '.join(schemas)}",
             f"reader   {spec.reader}: reads {', '.join(READER_SCHEMAS)}"]
    for role, ids in spec.analysts.items():
        lines.append(f"analyst  {role}: rows of business {', '.join(map(str, ids))} in marts")
    return lines


def _check_admin(conn: psycopg.Connection) -> None:
    row = conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()
    if not row or not row[0]:
        raise CrmError("roles: connect as a superuser (CRM_WAREHOUSE_URL's user is not one): "
                       "creating roles and changing owners needs it")


def _create_roles(conn: psycopg.Connection, spec: RoleSpec) -> None:
    """Missing roles are created as logins without a password (set one, or grant the role to
    people's own logins); existing ones keep their attributes. A role that bypasses row-level
    security cannot be bound by it, so it is refused as an analyst or reader."""
    for name in spec.all_roles():
        row = conn.execute("select rolsuper or rolbypassrls from pg_roles where rolname = %s",
                           [name]).fetchone()
        if row is None:
            conn.execute(sql.SQL("create role {} login").format(sql.Identifier(name)))
        elif row[0] and name != spec.writer:
            raise CrmError(f"roles: {name} is a superuser or has BYPASSRLS: row-level security "
                           "cannot restrict it; choose another role")
    conn.execute(sql.SQL("alter role {} set default_transaction_read_only = on")
                 .format(sql.Identifier(spec.reader)))


def _apply(conn: psycopg.Connection, spec: RoleSpec, schemas: list[str]) -> None:
    ident = sql.Identifier
    writer, reader = ident(spec.writer), ident(spec.reader)
    analysts = [ident(a) for a in spec.analysts]
    everyone = sql.SQL(", ").join([writer, reader, *analysts])
    db = ident(conn.info.dbname)

    conn.execute(sql.SQL("grant connect on database {} to {}").format(db, everyone))
    conn.execute(sql.SQL("grant create, temporary on database {} to {}").format(db, writer))

    # The writer owns what the pipeline writes, including what an earlier run made as
    # another user (dbt must be able to drop and rename its tables).
    for schema in schemas:
        conn.execute(sql.SQL("create schema if not exists {} authorization {}")
                     .format(ident(schema), writer))
        conn.execute(sql.SQL("alter schema {} owner to {}").format(ident(schema), writer))
        relations = conn.execute(
            "select c.relname, c.relkind from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where n.nspname = %s and c.relkind in ('r','p','v','m') "
            "and pg_get_userbyid(c.relowner) <> %s", [schema, spec.writer]).fetchall()
        for relname, relkind in relations:
            kind = {"v": "view", "m": "materialized view"}.get(relkind, "table")
            conn.execute(sql.SQL("alter {} {}.{} owner to {}").format(
                sql.SQL(kind), ident(schema), ident(relname), writer))
        _secure_views(conn, schema)

    # The registry and the policy function: owned by the admin, readable where needed.
    conn.execute(f"create schema if not exists {ACCESS_SCHEMA}")
    conn.execute(f"revoke all on schema {ACCESS_SCHEMA} from public")
    conn.execute(f"create table if not exists {ACCESS_SCHEMA}.roles (role_name text primary "
                 "key, kind text not null check (kind in ('writer', 'reader', 'analyst')))")
    conn.execute(f"create table if not exists {ACCESS_SCHEMA}.tenant_roles (role_name text "
                 "not null, business_id bigint not null, primary key (role_name, business_id))")
    # An analyst reads the mapping (the policies' subquery runs with its rights), but only
    # its own rows of it.
    conn.execute(f"alter table {ACCESS_SCHEMA}.tenant_roles enable row level security")
    conn.execute(f"alter table {ACCESS_SCHEMA}.tenant_roles force row level security")
    conn.execute(f"drop policy if exists own_rows on {ACCESS_SCHEMA}.tenant_roles")
    conn.execute(f"create policy own_rows on {ACCESS_SCHEMA}.tenant_roles for select using "
                 "(exists (select from pg_catalog.pg_roles as r where r.rolname = role_name "
                 "and pg_catalog.pg_has_role(r.oid, 'USAGE')))")
    conn.execute(SECURE_TABLE_FUNCTION)
    conn.execute(f"revoke all on function {ACCESS_SCHEMA}.secure_table(regclass) from public")

    for role, kind in [(spec.writer, "writer"), (spec.reader, "reader"),
                       *[(a, "analyst") for a in spec.analysts]]:
        conn.execute(f"insert into {ACCESS_SCHEMA}.roles values (%s, %s) on conflict "
                     "(role_name) do update set kind = excluded.kind", [role, kind])
    # A role that is no longer an analyst keeps no tenant rows.
    conn.execute(f"delete from {ACCESS_SCHEMA}.tenant_roles where role_name not in "
                 f"(select role_name from {ACCESS_SCHEMA}.roles where kind = 'analyst')")
    for role, ids in spec.analysts.items():
        conn.execute(f"delete from {ACCESS_SCHEMA}.tenant_roles where role_name = %s", [role])
        for business_id in ids:
            conn.execute(f"insert into {ACCESS_SCHEMA}.tenant_roles values (%s, %s)",
                         [role, business_id])

    conn.execute(sql.SQL("grant usage on schema {} to {}").format(
        ident(ACCESS_SCHEMA), everyone))
    conn.execute(sql.SQL("grant select on {}.roles to {}").format(ident(ACCESS_SCHEMA), writer))
    conn.execute(sql.SQL("grant execute on function {}.secure_table(regclass) to {}").format(
        ident(ACCESS_SCHEMA), writer))
    if analysts:
        conn.execute(sql.SQL("grant select on {}.tenant_roles to {}").format(
            ident(ACCESS_SCHEMA), sql.SQL(", ").join(analysts)))
        conn.execute(sql.SQL("grant usage on schema {} to {}").format(
            ident(MARTS_SCHEMA), sql.SQL(", ").join(analysts)))

    # The reader: marts and the run log, now and whatever the writer creates there later.
    for schema in READER_SCHEMAS:
        conn.execute(sql.SQL("grant usage on schema {} to {}").format(ident(schema), reader))
        conn.execute(sql.SQL("grant select on all tables in schema {} to {}")
                     .format(ident(schema), reader))
        conn.execute(sql.SQL("alter default privileges for role {} in schema {} grant select "
                             "on tables to {}").format(writer, ident(schema), reader))

    # The marts as they are now; dbt's post-hook does the same for every rebuilt one.
    marts = conn.execute(
        "select c.oid::regclass::text from pg_class c join pg_namespace n on "
        "n.oid = c.relnamespace where n.nspname = %s and c.relkind in ('r', 'p')",
        [MARTS_SCHEMA]).fetchall()
    for (rel,) in marts:
        conn.execute("select crm_access.secure_table(%s::regclass)", [rel])


def _secure_views(conn: psycopg.Connection, schema: str) -> None:
    """Views check the caller's rights, not their owner's (PostgreSQL 15+): a view can never
    show a role rows that row-level security hides from it."""
    if conn.info.server_version < 150000:
        return
    views = conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relkind = 'v'", [schema]).fetchall()
    for (name,) in views:
        conn.execute(sql.SQL("alter view {}.{} set (security_invoker = true)").format(
            sql.Identifier(schema), sql.Identifier(name)))
