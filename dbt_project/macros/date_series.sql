{#- A lateral join that yields one row per calendar day from start_date to end_date
    (inclusive, both DATE expressions), as column `<alias>.<column>`: a TIMESTAMP at midnight
    of each day, to cast to date.
    No row when either bound is NULL or end_date < start_date.

    Usage: `from flights {{ join_date_series('flights.start_date', 'flights.end_date',
    'days', 'day') }}` then `select cast(days.day as date)`. -#}
{% macro join_date_series(start_date, end_date, alias, column) -%}
    {{ return(adapter.dispatch('join_date_series', 'crm_analytics')(start_date, end_date, alias, column)) }}
{%- endmacro %}

{#- DuckDB and PostgreSQL both accept the timestamp/interval form of generate_series in a
    lateral join (casting the bounds to a plain timestamp avoids time-zone arithmetic), so
    no adapter-specific version is needed; another adapter can add `<adapter>__` here. -#}
{% macro default__join_date_series(start_date, end_date, alias, column) -%}
    cross join lateral generate_series(
        cast({{ start_date }} as timestamp),
        cast({{ end_date }} as timestamp),
        interval '1 day'
    ) as {{ alias }}({{ column }})
{%- endmacro %}

{#- Spark has no generate_series: explode a sequence of dates (a sequence whose end is before its
    start is an error there, so that case gives NULL, which explodes to no row). -#}
{% macro spark__join_date_series(start_date, end_date, alias, column) -%}
    cross join lateral explode(
        case
            when cast({{ end_date }} as date) >= cast({{ start_date }} as date)
                then sequence(cast({{ start_date }} as date), cast({{ end_date }} as date),
                              interval 1 day)
        end
    ) as {{ alias }}({{ column }})
{%- endmacro %}
