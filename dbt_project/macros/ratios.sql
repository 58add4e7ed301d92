{#- numerator / denominator as {{ float_type() }}; NULL when the denominator is 0 or NULL
    (docs/contract.md section 5: "Rates are NULL where the denominator is 0 or NULL"). -#}
{% macro safe_ratio(numerator, denominator) -%}
    {{ return(adapter.dispatch('safe_ratio', 'crm_analytics')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__safe_ratio(numerator, denominator) -%}
    (cast({{ numerator }} as {{ float_type() }})
        / nullif(cast({{ denominator }} as {{ float_type() }}), 0))
{%- endmacro %}

{#- Text codes are compared after trimming and lower-casing (' Won' is 'won'). -#}
{% macro normalize_code(column) -%}
    nullif(lower(trim(cast({{ column }} as {{ string_type() }}))), '')
{%- endmacro %}
