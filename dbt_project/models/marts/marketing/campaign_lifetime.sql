{#- One row per campaign: its totals to date, summed from v_crm_campaign_performance (flight
    dates up to the as-of date plus every other date with activity), so the daily mart and
    these totals always agree. -#}

with

campaign_days as (

    select * from {{ ref('v_crm_campaign_performance') }}

),

campaigns as (

    select * from {{ ref('stg_erp__crm_campaigns') }}

),

totals as (

    select
        campaign_id,
        min({{ adapter.quote('date') }}) as first_date,
        max({{ adapter.quote('date') }}) as last_date,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(conversions) as conversions,
        sum(revenue) as revenue,
        sum(sends) as sends,
        -- NULL when the campaign's spend is undefined (no budget or no flight)
        sum(spend) as spend,
        sum(case when data_source = 'events' then 1 else 0 end) as event_days,
        sum(case when data_source = 'erp' then 1 else 0 end) as erp_days

    from campaign_days

    group by campaign_id

),

final as (

    select
        totals.campaign_id,
        campaign_days.business_id,
        campaign_days.branch_id,
        campaign_days.campaign_name,
        campaign_days.campaign_type,
        campaign_days.status,
        totals.first_date,
        totals.last_date,
        cast(totals.impressions as bigint) as impressions,
        cast(totals.clicks as bigint) as clicks,
        cast(totals.conversions as bigint) as conversions,
        cast(totals.sends as bigint) as sends,
        cast(totals.revenue as decimal(18, 2)) as revenue,
        cast(totals.spend as decimal(19, 6)) as spend,
        cast(campaigns.budget as decimal(18, 2)) as budget,
        {{ safe_ratio('totals.clicks', 'totals.impressions') }} as ctr,
        {{ safe_ratio('totals.conversions', 'totals.clicks') }} as cvr,
        {{ safe_ratio('totals.revenue - totals.spend', 'totals.spend') }} as roi,
        {{ safe_ratio('totals.spend', 'campaigns.budget') }} as budget_used,
        {{ money_per('totals.spend', 'totals.conversions') }} as cost_per_conversion,
        cast(totals.event_days as bigint) as event_days,
        cast(totals.erp_days as bigint) as erp_days

    from totals

    -- the campaign's attributes are the same on each of its days: take them from its first
    inner join campaign_days
        on totals.campaign_id = campaign_days.campaign_id
        and totals.first_date = campaign_days.{{ adapter.quote('date') }}

    left join campaigns
        on totals.campaign_id = campaigns.campaign_id

)

select * from final
