{#- The date a deal was won according to its `erp.opportunity.won` events: the first such
    event (first landed copies), as a date in the reporting zone, up to the as-of date.
    Shared by the deal history (the won version starts that day), the cockpit's deal dates
    and owner performance (the sales cycle ends that day). A table, not a view: as a view each
    reader, and each of its data tests, searched every campaign event again. -#}

{{ config(materialized='table') }}

with

events as (

    select * from {{ ref('int_campaign_events_deduplicated') }}

),

won_events as (

    select
        deal_id,
        event_date

    from events

    where event_type = 'erp.opportunity.won'
        and deal_id is not null
        and event_date <= {{ as_of_date() }}

),

final as (

    select
        deal_id,
        min(event_date) as won_event_date

    from won_events

    group by deal_id

)

select * from final
