{#- One row per campaign: its totals to date, summed from v_crm_campaign_performance (flight
    dates up to the as-of date plus every other date with activity), so the daily mart and
    these totals always agree; and its target audience, with the share of it that converted
    (a conversion event of that campaign naming the contact). -#}

with

campaign_days as (

    select * from {{ ref('v_crm_campaign_performance') }}

),

campaigns as (

    select * from {{ ref('stg_erp__crm_campaigns') }}

),

audience as (

    select * from {{ ref('stg_erp__crm_campaigns_target_audience') }}

),

converted_contacts as (

    select distinct
        campaign_id,
        contact_id

    from {{ ref('int_campaign_events_deduplicated') }}

    where event_type = 'erp.campaign.conversion'

),

audience_totals as (

    select
        audience.campaign_id,
        count(distinct audience.contact_id) as audience_size,
        count(distinct converted_contacts.contact_id) as audience_converted

    from audience

    left join converted_contacts
        on audience.campaign_id = converted_contacts.campaign_id
        and audience.contact_id = converted_contacts.contact_id

    group by audience.campaign_id

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
        cast(totals.erp_days as bigint) as erp_days,
        cast(coalesce(audience_totals.audience_size, 0) as bigint) as audience_size,
        cast(coalesce(audience_totals.audience_converted, 0) as bigint) as audience_converted,
        {{ safe_ratio('audience_totals.audience_converted', 'audience_totals.audience_size') }}
            as audience_conversion_rate

    from totals

    -- the campaign's attributes are the same on each of its days: take them from its first
    inner join campaign_days
        on totals.campaign_id = campaign_days.campaign_id
        and totals.first_date = campaign_days.{{ adapter.quote('date') }}

    left join campaigns
        on totals.campaign_id = campaigns.campaign_id

    left join audience_totals
        on totals.campaign_id = audience_totals.campaign_id

)

select * from final
