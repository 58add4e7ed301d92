{#- Leads and deals each campaign brought (last touch within 30 days of the lead), their won
    revenue and the campaign's spend: docs/contract.md section 6. -#}

with

campaigns as (

    select * from {{ ref('int_crm_campaigns') }}

),

events as (

    select * from {{ ref('int_campaign_events_deduplicated') }}

),

leads as (

    select * from {{ ref('stg_erp__crm_leads') }}

),

deals as (

    select * from {{ ref('int_crm_deal_outcomes') }}

),

campaign_days as (

    select * from {{ ref('v_crm_campaign_performance') }}

),

-- a campaign event that names a contact touches it at the event's time
touches as (

    select
        campaign_id,
        contact_id,
        event_time

    from events

    where event_type in ('{{ campaign_event_types() | join("', '") }}')  -- noqa: LT05
        and campaign_id is not null
        and contact_id is not null
        and event_date <= {{ as_of_date() }}

),

-- the touches of a lead's contact in the 30 × 24 hours up to its creation, latest first
lead_touches as (

    select
        leads.lead_id,
        touches.campaign_id,
        row_number() over (
            partition by leads.lead_id
            order by touches.event_time desc, touches.campaign_id asc
        ) as touch_rank

    from leads

    inner join touches
        on leads.contact_id = touches.contact_id
        and leads.created_at >= touches.event_time
        and {{ dbt.dateadd('hour', -720, 'leads.created_at') }} <= touches.event_time

),

attributed_leads as (

    select
        lead_id,
        campaign_id

    from lead_touches

    where touch_rank = 1

),

lead_totals as (

    select
        campaign_id,
        count(*) as attributed_leads

    from attributed_leads

    group by campaign_id

),

deal_totals as (

    select
        attributed_leads.campaign_id,
        count(*) as attributed_deals,
        sum(case when deals.deal_state = 'won' then 1 else 0 end) as won_deals,
        coalesce(sum(case when deals.deal_state = 'won' then deals.amount end), 0) as won_amount

    from deals

    inner join attributed_leads
        on deals.lead_id = attributed_leads.lead_id

    group by attributed_leads.campaign_id

),

-- NULL when every day's spend is NULL (no budget or no flight) or the campaign has no day
spend_totals as (

    select
        campaign_id,
        sum(spend) as spend

    from campaign_days

    where {{ adapter.quote('date') }} <= {{ as_of_date() }}

    group by campaign_id

),

attribution as (

    select
        campaigns.campaign_id,
        campaigns.business_id,
        campaigns.branch_id,
        campaigns.campaign_name,
        campaigns.campaign_type,
        coalesce(lead_totals.attributed_leads, 0) as attributed_leads,
        coalesce(deal_totals.attributed_deals, 0) as attributed_deals,
        coalesce(deal_totals.won_deals, 0) as won_deals,
        coalesce(deal_totals.won_amount, 0) as won_amount,
        spend_totals.spend

    from campaigns

    left join lead_totals
        on campaigns.campaign_id = lead_totals.campaign_id

    left join deal_totals
        on campaigns.campaign_id = deal_totals.campaign_id

    left join spend_totals
        on campaigns.campaign_id = spend_totals.campaign_id

),

final as (

    select
        campaign_id,
        business_id,
        branch_id,
        campaign_name,
        campaign_type,
        cast(attributed_leads as bigint) as attributed_leads,
        cast(attributed_deals as bigint) as attributed_deals,
        cast(won_deals as bigint) as won_deals,
        cast(won_amount as decimal(18, 2)) as won_amount,
        cast(spend as decimal(19, 6)) as spend,
        {{ money_per('spend', 'attributed_leads') }} as cost_per_lead,
        {{ safe_ratio('won_amount - spend', 'spend') }} as won_roi

    from attribution

)

select * from final
