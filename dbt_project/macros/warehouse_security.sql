{#- Access control that must survive dbt's rebuilds (docs/operations.md, "Warehouse").

    dbt replaces a table model by building a new table and renaming it into place, which drops
    the old table's grants, row-level security and policies. On PostgreSQL each mart's
    post-hook therefore re-applies them by calling `crm_access.secure_table`, the function
    `crm-analytics roles` installs (orchestration/warehouse_roles.py holds the rules). The hook
    runs inside the transaction that swaps the new table in, so no reader ever sees a mart
    without its policies. Before `roles` has run the function does not exist and the hook does
    nothing. DuckDB has no roles: both hooks compile to nothing there. -#}
{% macro crm_secure_mart() -%}
    {{ return(adapter.dispatch('crm_secure_mart', 'crm_analytics')()) }}
{%- endmacro %}

{% macro default__crm_secure_mart() -%}
{%- endmacro %}

{% macro postgres__crm_secure_mart() -%}
    {%- if model.config.materialized in ('table', 'incremental') -%}
        do $crm$ begin
            if to_regprocedure('crm_access.secure_table(regclass)') is not null then
                perform crm_access.secure_table('{{ this.include(database=False) }}'::regclass);
            end if;
        end $crm$
    {%- endif -%}
{%- endmacro %}

{#- Views run with the rights of whoever queries them, not of their owner (PostgreSQL 15+
    `security_invoker`): a view over a table with row-level security can never show a role
    the rows the policies hide from it. -#}
{% macro crm_secure_view() -%}
    {{ return(adapter.dispatch('crm_secure_view', 'crm_analytics')()) }}
{%- endmacro %}

{% macro default__crm_secure_view() -%}
{%- endmacro %}

{% macro postgres__crm_secure_view() -%}
    {%- if model.config.materialized == 'view' -%}
        do $crm$ begin
            if current_setting('server_version_num')::int >= 150000 then
                execute 'alter view {{ this.include(database=False) }} set (security_invoker = true)';
            end if;
        end $crm$
    {%- endif -%}
{%- endmacro %}
