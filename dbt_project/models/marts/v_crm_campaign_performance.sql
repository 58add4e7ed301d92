with

campaigns as (

    select * from {{ ref('int_crm_campaigns') }}

),

event_days as (

    select * from {{ ref('int_campaign_event_days') }}

),

erp_performance as (

    select * from {{ ref('stg_erp__crm_campaign_performance') }}

),

campaign_attributes as (

    select
        *,
        {{ dbt.datediff('flight_start_date', 'flight_end_date', 'day') }} + 1 as flight_days  -- noqa: LT05

    from campaigns

),

-- every flight date up to the as-of date
flight_dates as (

    select
        campaign_attributes.campaign_id,
        cast(flight_days.flight_day as date) as activity_date

    from campaign_attributes

    {{ join_date_series(
        'campaign_attributes.flight_start_date',
        'case when campaign_attributes.flight_end_date < ' ~ as_of_date()
            ~ ' then campaign_attributes.flight_end_date else ' ~ as_of_date() ~ ' end',
        'flight_days',
        'flight_day'
    ) }}

    where campaign_attributes.flight_start_date is not null
        and campaign_attributes.flight_end_date is not null

),

-- a (campaign, date) with at least one erp.campaign.* event (first landed copies)
event_activity as (

    select
        campaign_id,
        event_date as activity_date,
        impressions,
        clicks,
        conversions,
        revenue,
        sends

    from event_days

    where has_events

),

erp_activity as (

    select
        campaign_id,
        performance_date as activity_date,
        coalesce(sum(impressions), 0) as impressions,
        coalesce(sum(clicks), 0) as clicks,
        coalesce(sum(conversions), 0) as conversions,
        coalesce(sum(revenue), 0) as revenue

    from erp_performance

    where campaign_id is not null
        and performance_date is not null

    group by campaign_id, performance_date

),

campaign_dates as (

    select
        campaign_id,
        activity_date
    from flight_dates

    union

    select
        campaign_id,
        activity_date
    from event_activity

    union

    select
        campaign_id,
        activity_date
    from erp_activity

),

daily_performance as (

    select
        campaign_dates.campaign_id,
        campaign_dates.activity_date,
        campaign_attributes.business_id,
        campaign_attributes.branch_id,
        campaign_attributes.campaign_name,
        campaign_attributes.campaign_type,
        campaign_attributes.campaign_status,

        case
            when event_activity.campaign_id is not null then 'events'
            when erp_activity.campaign_id is not null then 'erp'
            else 'none'
        end as data_source,

        -- event activity wins over the ERP's rows for the same campaign and date
        coalesce(event_activity.impressions, erp_activity.impressions, 0) as impressions,
        coalesce(event_activity.clicks, erp_activity.clicks, 0) as clicks,
        coalesce(event_activity.conversions, erp_activity.conversions, 0) as conversions,
        coalesce(event_activity.revenue, erp_activity.revenue, 0) as revenue,
        coalesce(event_activity.sends, 0) as sends,

        case
            when campaign_attributes.budget is null
                or campaign_attributes.flight_start_date is null
                or campaign_attributes.flight_end_date is null
                then null
            when campaign_dates.activity_date
                between campaign_attributes.flight_start_date
                and campaign_attributes.flight_end_date
                then {{ divide_decimal('campaign_attributes.budget', 'campaign_attributes.flight_days') }}  -- noqa: LT05
            else 0
        end as spend

    from campaign_dates

    left join campaign_attributes
        on campaign_dates.campaign_id = campaign_attributes.campaign_id

    left join event_activity
        on campaign_dates.campaign_id = event_activity.campaign_id
        and campaign_dates.activity_date = event_activity.activity_date

    left join erp_activity
        on campaign_dates.campaign_id = erp_activity.campaign_id
        and campaign_dates.activity_date = erp_activity.activity_date

),

final as (

    select
        campaign_id,
        activity_date as {{ adapter.quote('date') }},
        business_id,
        branch_id,
        campaign_name,
        campaign_type,
        campaign_status as status,
        cast(impressions as bigint) as impressions,
        cast(clicks as bigint) as clicks,
        cast(conversions as bigint) as conversions,
        cast(revenue as decimal(18, 2)) as revenue,
        cast(sends as bigint) as sends,
        cast(spend as decimal(19, 6)) as spend,
        {{ safe_ratio('clicks', 'impressions') }} as ctr,
        {{ safe_ratio('conversions', 'clicks') }} as cvr,
        {{ safe_ratio('revenue - spend', 'spend') }} as roi,
        data_source

    from daily_performance

)

select * from final
