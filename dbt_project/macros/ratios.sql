{#- numerator / denominator as double precision; NULL when the denominator is 0 or NULL
    (docs/contract.md section 5: "Rates are NULL where the denominator is 0 or NULL"). -#}
{% macro safe_ratio(numerator, denominator) -%}
    {{ return(adapter.dispatch('safe_ratio', 'crm_analytics')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__safe_ratio(numerator, denominator) -%}
    (cast({{ numerator }} as double precision)
        / nullif(cast({{ denominator }} as double precision), 0))
{%- endmacro %}

{#- Text codes are compared after trimming and lower-casing (' Won' is 'won'). -#}
{% macro normalize_code(column) -%}
    nullif(lower(trim(cast({{ column }} as varchar))), '')
{%- endmacro %}
