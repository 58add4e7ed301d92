-- Layers reconcile: per campaign, the revenue summed over v_crm_campaign_performance's days
-- equals the revenue of its conversion events (first landed copies) plus the ERP's revenue on
-- the dates without any campaign event. Returns the campaigns where they differ.

with

mart_revenue as (

    select
        campaign_id,
        sum(revenue) as revenue

    from {{ ref('v_crm_campaign_performance') }}

    group by campaign_id

),

campaign_events as (

    select * from {{ ref('int_campaign_events_deduplicated') }}
    where event_type in ('{{ campaign_event_types() | join("', '") }}')  -- noqa: LT05
        and campaign_id is not null

),

event_revenue as (

    select
        campaign_id,
        sum(case when event_type = 'erp.campaign.conversion' then revenue else 0 end)
            as revenue

    from campaign_events

    group by campaign_id

),

event_days as (

    select distinct
        campaign_id,
        event_date
    from campaign_events

),

erp_only_revenue as (

    select
        erp.campaign_id,
        sum(erp.revenue) as revenue

    from {{ ref('stg_erp__crm_campaign_performance') }} as erp

    left join event_days
        on erp.campaign_id = event_days.campaign_id
        and erp.performance_date = event_days.event_date

    where event_days.campaign_id is null
        and erp.campaign_id is not null
        and erp.performance_date is not null

    group by erp.campaign_id

),

campaigns as (

    select campaign_id from mart_revenue
    union
    select campaign_id from event_revenue
    union
    select campaign_id from erp_only_revenue

),

compared as (

    select
        campaigns.campaign_id,
        coalesce(mart_revenue.revenue, 0) as mart_revenue,
        coalesce(event_revenue.revenue, 0) + coalesce(erp_only_revenue.revenue, 0)
            as source_revenue

    from campaigns

    left join mart_revenue on campaigns.campaign_id = mart_revenue.campaign_id

    left join event_revenue on campaigns.campaign_id = event_revenue.campaign_id

    left join erp_only_revenue on campaigns.campaign_id = erp_only_revenue.campaign_id

)

select * from compared
where mart_revenue <> source_revenue
