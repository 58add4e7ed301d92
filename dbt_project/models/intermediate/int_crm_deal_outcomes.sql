{#- The one place where the sales cockpit's deal dates are defined (docs/contract.md section 6):
    one row per deal created on or before the as-of date (or without a created_at), with its
    created date, its won date (its first erp.opportunity.won event on or before the as-of
    date, else the date of updated_at), its lost date (the date of updated_at) and its sales
    cycle. Dates are in the reporting zone; won and lost dates are not clamped to the as-of
    date. A table, not a view: seven marts read it, and as a view each recomputed it. -#}

{{ config(materialized='table') }}

with

deals as (

    select * from {{ ref('int_crm_deals_with_state') }}

),

won_dates as (

    select * from {{ ref('int_crm_deal_won_dates') }}

),

dated as (

    select
        deals.deal_id,
        deals.contact_id,
        deals.lead_id,
        deals.business_id,
        deals.branch_id,
        deals.owner_id,
        deals.stage_id,
        deals.stage_order,
        deals.deal_state,
        deals.amount,
        deals.close_date,
        {{ to_reporting_date('deals.created_at') }} as created_date,
        {{ to_reporting_date('deals.updated_at') }} as updated_date,
        case
            when deals.deal_state = 'won'
                then coalesce(won_dates.won_event_date, {{ to_reporting_date('deals.updated_at') }})
        end as won_date,
        case
            when deals.deal_state = 'lost' then {{ to_reporting_date('deals.updated_at') }}
        end as lost_date

    from deals

    left join won_dates
        on deals.deal_id = won_dates.deal_id

    -- deals created after the as-of date do not exist yet for this run
    where deals.created_at is null
        or {{ to_reporting_date('deals.created_at') }} <= {{ as_of_date() }}

),

final as (

    select
        *,
        -- days from creation to the win for a won deal: never below 0, and 0 without a
        -- created date, so that cycle_days_sum / won_deals is an average over every win
        case
            when won_date >= created_date
                then {{ dbt.datediff('created_date', 'won_date', 'day') }}
            when won_date is not null then 0
        end as cycle_days

    from dated

)

select * from final
