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
