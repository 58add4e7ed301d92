{#- The deal history the dbt snapshot `snp_erp__crm_deals` recorded in a warehouse built
    before crm_deal_versions replaced it: the relation in the versions model's schema, or
    none. crm_deal_versions starts from it on its first build. A macro of its own so unit
    tests can override it (they cannot build a relation). -#}
{% macro legacy_deal_snapshot() -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(adapter.get_relation(
        database=this.database, schema=this.schema, identifier='snp_erp__crm_deals')) }}
{%- endmacro %}
