{#- One row per (business_id, branch_id, source): every cohort of v_crm_lead_conversion summed
    (so the two marts agree), plus the time from a lead's creation to its first
    `erp.lead.qualified` event, for the leads such an event names. -#}

with

cohorts as (

    select * from {{ ref('v_crm_lead_conversion') }}

),

leads as (

    select * from {{ ref('stg_erp__crm_leads') }}

),

contacts as (

    select * from {{ ref('stg_erp__contacts') }}

),

events as (

    select * from {{ ref('int_campaign_events_deduplicated') }}

),

first_qualified_events as (

    select
        lead_id,
        min(event_date) as qualified_on

    from events

    where event_type = 'erp.lead.qualified'
        and lead_id is not null

    group by lead_id

),

-- days from creation to qualification; NULL when the event predates the lead
qualification_times as (

    select
        contacts.business_id,
        contacts.branch_id,
        leads.lead_source,
        case
            when {{ to_reporting_date('leads.created_at') }} <= first_qualified_events.qualified_on
                then {{ dbt.datediff(
                    to_reporting_date('leads.created_at'),
                    'first_qualified_events.qualified_on',
                    'day'
                ) }}
        end as days_to_qualify

    from leads

    inner join first_qualified_events
        on leads.lead_id = first_qualified_events.lead_id

    left join contacts
        on leads.contact_id = contacts.contact_id

),

qualification_by_source as (

    select
        business_id,
        branch_id,
        lead_source,
        count(days_to_qualify) as leads_with_qualify_time,
        avg(cast(days_to_qualify as {{ float_type() }})) as avg_days_to_qualify

    from qualification_times

    group by business_id, branch_id, lead_source

),

sources as (

    select
        business_id,
        branch_id,
        {{ adapter.quote('source') }} as lead_source,
        min(cohort_month) as first_cohort_month,
        sum(leads) as leads,
        sum(reached_contacted) as reached_contacted,
        sum(reached_qualified) as reached_qualified,
        sum(won_leads) as won_leads,
        sum(lost_leads) as lost_leads,
        sum(lead_value) as lead_value,
        sum(won_value) as won_value

    from cohorts

    group by business_id, branch_id, {{ adapter.quote('source') }}

),

final as (

    select
        sources.business_id,
        sources.branch_id,
        sources.lead_source as {{ adapter.quote('source') }},
        sources.first_cohort_month,
        cast(sources.leads as bigint) as leads,
        cast(sources.reached_contacted as bigint) as reached_contacted,
        cast(sources.reached_qualified as bigint) as reached_qualified,
        cast(sources.won_leads as bigint) as won_leads,
        cast(sources.lost_leads as bigint) as lost_leads,
        cast(sources.lead_value as decimal(18, 2)) as lead_value,
        cast(sources.won_value as decimal(18, 2)) as won_value,
        {{ safe_ratio('sources.reached_qualified', 'sources.leads') }} as qualification_rate,
        {{ safe_ratio('sources.won_leads', 'sources.leads') }} as lead_win_rate,
        {{ safe_ratio('sources.won_value', 'sources.lead_value') }} as value_win_rate,
        {{ money_per('sources.lead_value', 'sources.leads') }} as average_lead_value,
        cast(coalesce(qualification_by_source.leads_with_qualify_time, 0) as bigint)
            as leads_with_qualify_time,
        qualification_by_source.avg_days_to_qualify

    from sources

    left join qualification_by_source
        on sources.business_id is not distinct from qualification_by_source.business_id
        and sources.branch_id is not distinct from qualification_by_source.branch_id
        and sources.lead_source = qualification_by_source.lead_source

)

select * from final
