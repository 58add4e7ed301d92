{#- The order in which deliveries of one event (same event_source, event_id) compete: the first
    landed copy wins — earliest landing date, then file name (file_path is
    '<landing date>/<file name>'), then line number. load_id and event_time only make the
    choice deterministic should one line ever be landed twice. -#}
{% macro first_landed_order() -%}
    landing_date, file_path, line_number, load_id, event_time
{%- endmacro %}

{#- The event types that are campaign activity. -#}
{% macro campaign_event_types() -%}
    {{ return(['erp.campaign.impression', 'erp.campaign.click', 'erp.campaign.conversion',
               'erp.campaign.sent']) }}
{%- endmacro %}
