{#- Models go to the schema they name (`marts`, `staging`), not `<target>_marts`:
    analysts and dashboards rely on `marts.v_crm_*` (docs/contract.md section 5). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
