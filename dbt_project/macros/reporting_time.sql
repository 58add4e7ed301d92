{#- Time-zone and as-of-date helpers. Dates and months are in var('reporting_tz')
    (docs/contract.md section 5); `timestamptz at time zone '<zone>'` gives the local wall-clock
    timestamp in both DuckDB (ICU) and PostgreSQL. -#}

{% macro reporting_tz() -%}
    {%- set tz = var('reporting_tz', 'UTC') | string | trim -%}
    {%- if tz == '' -%}{%- set tz = 'UTC' -%}{%- endif -%}
    {%- if not modules.re.match('^[A-Za-z0-9_+/-]+$', tz) -%}
        {{ exceptions.raise_compiler_error("reporting_tz is not an IANA zone name: '" ~ tz ~ "'") }}
    {%- endif -%}
    {{- return(tz) -}}
{%- endmacro %}

{#- The local (reporting zone) wall-clock timestamp of a timestamptz expression. -#}
{% macro to_reporting_timestamp(column) -%}
    {{ return(adapter.dispatch('to_reporting_timestamp', 'crm_analytics')(column)) }}
{%- endmacro %}

{% macro default__to_reporting_timestamp(column) -%}
    (({{ column }}) at time zone '{{ reporting_tz() }}')
{%- endmacro %}

{#- Spark has no `at time zone`: its timestamps are instants shown in the session zone (UTC on
    the Spark target), and from_utc_timestamp shifts one to the zone's wall clock. -#}
{% macro spark__to_reporting_timestamp(column) -%}
    from_utc_timestamp(({{ column }}), '{{ reporting_tz() }}')
{%- endmacro %}

{#- The date, in the reporting zone, of a timestamptz expression. -#}
{% macro to_reporting_date(column) -%}
    cast({{ to_reporting_timestamp(column) }} as date)
{%- endmacro %}

{#- The first day of the month, in the reporting zone, of a timestamptz expression. -#}
{% macro to_reporting_month(column) -%}
    cast({{ dbt.date_trunc('month', to_reporting_timestamp(column)) }} as date)
{%- endmacro %}

{#- The run's as-of date: var('as_of_date') (YYYY-MM-DD), or today in the reporting zone. -#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', '') | string | trim -%}
    {%- if value == '' -%}
        {{ to_reporting_date('current_timestamp') }}
    {%- elif modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
        cast('{{ value }}' as date)
    {%- else -%}
        {{ exceptions.raise_compiler_error("as_of_date must be YYYY-MM-DD, got '" ~ value ~ "'") }}
    {%- endif -%}
{%- endmacro %}
