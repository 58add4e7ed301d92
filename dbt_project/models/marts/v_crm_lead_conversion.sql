with

leads as (

    select * from {{ ref('stg_erp__crm_leads') }}

),

contacts as (

    select * from {{ ref('stg_erp__contacts') }}

),

events as (

    select * from {{ ref('int_campaign_events_deduplicated') }}

),

qualified_by_event as (

    select distinct lead_id

    from events

    where event_type = 'erp.lead.qualified'
        and lead_id is not null

),

lead_funnel as (

    select
        -- tenant keys are the contact's (NULL without one); soft-deleted contacts count here
        contacts.business_id,
        contacts.branch_id,
        leads.lead_source,
        {{ to_reporting_month('leads.created_at') }} as cohort_month,
        leads.lead_value,

        case
            when leads.lead_status in ('contacted', 'qualified', 'won') then 1
            when qualified_by_event.lead_id is not null then 1
            else 0
        end as is_reached_contacted,

        case
            when leads.lead_status in ('qualified', 'won') then 1
            when qualified_by_event.lead_id is not null then 1
            else 0
        end as is_reached_qualified,

        case when leads.lead_status = 'won' then 1 else 0 end as is_won,
        case when leads.lead_status = 'lost' then 1 else 0 end as is_lost

    from leads

    left join contacts
        on leads.contact_id = contacts.contact_id

    left join qualified_by_event
        on leads.lead_id = qualified_by_event.lead_id

),

cohorts as (

    select
        business_id,
        branch_id,
        lead_source,
        cohort_month,
        count(*) as leads,
        sum(is_reached_contacted) as reached_contacted,
        sum(is_reached_qualified) as reached_qualified,
        sum(is_won) as won_leads,
        sum(is_lost) as lost_leads,
        coalesce(sum(lead_value), 0) as lead_value,
        coalesce(sum(case when is_won = 1 then lead_value end), 0) as won_value

    from lead_funnel

    group by business_id, branch_id, lead_source, cohort_month

),

final as (

    select
        business_id,
        branch_id,
        lead_source as {{ adapter.quote('source') }},
        cohort_month,
        cast(leads as bigint) as leads,
        cast(reached_contacted as bigint) as reached_contacted,
        cast(reached_qualified as bigint) as reached_qualified,
        cast(won_leads as bigint) as won_leads,
        cast(lost_leads as bigint) as lost_leads,
        cast(lead_value as decimal(18, 2)) as lead_value,
        cast(won_value as decimal(18, 2)) as won_value,
        {{ safe_ratio('reached_qualified', 'leads') }} as qualification_rate,
        {{ safe_ratio('won_leads', 'leads') }} as lead_win_rate

    from cohorts

)

select * from final
