{#- Type names that the warehouses spell differently. DuckDB and PostgreSQL share the default
    spelling; Spark has no `varchar` without a length, no `double precision` and no
    `timestamp with time zone` (its `timestamp` is an instant, shown in the session's zone,
    which the Spark target sets to UTC). Each macro returns the bare name, so a model writes
    `cast(x as {{ string_type() }})`. -#}
{% macro string_type() -%}
    {{ return(adapter.dispatch('string_type', 'crm_analytics')()) }}
{%- endmacro %}

{% macro default__string_type() -%}
    {{ return('varchar') }}
{%- endmacro %}

{% macro spark__string_type() -%}
    {{ return('string') }}
{%- endmacro %}

{% macro float_type() -%}
    {{ return(adapter.dispatch('float_type', 'crm_analytics')()) }}
{%- endmacro %}

{% macro default__float_type() -%}
    {{ return('double precision') }}
{%- endmacro %}

{% macro spark__float_type() -%}
    {{ return('double') }}
{%- endmacro %}

{% macro timestamptz_type() -%}
    {{ return(adapter.dispatch('timestamptz_type', 'crm_analytics')()) }}
{%- endmacro %}

{% macro default__timestamptz_type() -%}
    {{ return('timestamp with time zone') }}
{%- endmacro %}

{% macro spark__timestamptz_type() -%}
    {{ return('timestamp') }}
{%- endmacro %}

{#- `cast(<column> as decimal(<precision>, <scale>))`, failing on a value out of range the
    way DuckDB and PostgreSQL do. dbt-spark runs every statement of an in-process Spark with
    ANSI mode off (it sets `spark.sql.ansi.enabled=false` on each one, over any profile
    setting), and Spark then turns an overflowing cast into NULL: an ERP amount wider than the
    ERD's column would vanish from the marts instead of failing the build. So on Spark the
    range is checked and `raise_error` fails the statement, whatever the ANSI setting. Use it
    where an ERP or event value enters: the staging models. -#}
{% macro to_decimal(column, precision, scale) -%}
    {{ return(adapter.dispatch('to_decimal', 'crm_analytics')(column, precision, scale)) }}
{%- endmacro %}

{% macro default__to_decimal(column, precision, scale) -%}
    cast({{ column }} as decimal({{ precision }}, {{ scale }}))
{%- endmacro %}

{% macro spark__to_decimal(column, precision, scale) -%}
    {%- set decimal_type = 'decimal(' ~ precision ~ ', ' ~ scale ~ ')' -%}
    case
            when {{ column }} is not null and try_cast({{ column }} as {{ decimal_type }}) is null
                then raise_error(concat('{{ column }} ', cast({{ column }} as string),
                                        ' cannot be represented as {{ decimal_type }}'))
            else cast({{ column }} as {{ decimal_type }})
        end
{%- endmacro %}
