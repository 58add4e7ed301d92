{#- Open deals that are overdue (close date before the as-of date) or stale (not updated for
    more than 30 days before it): docs/contract.md section 6. -#}

with

deals as (

    select * from {{ ref('int_crm_deal_outcomes') }}

),

stages as (

    select * from {{ ref('stg_erp__crm_pipeline_stages') }}

),

open_deals as (

    select
        deals.*,
        stages.stage_name,
        case
            when deals.close_date < {{ as_of_date() }}
                then {{ dbt.datediff('deals.close_date', as_of_date(), 'day') }}
            else 0
        end as days_overdue,
        -- an updated_at after the as-of date counts as updated that day (never below 0)
        case
            when deals.updated_date > {{ as_of_date() }} then 0
            else {{ dbt.datediff('deals.updated_date', as_of_date(), 'day') }}
        end as days_since_update

    from deals

    left join stages
        on deals.stage_id = stages.stage_id

    where deals.deal_state = 'open'

),

final as (

    select
        deal_id,
        business_id,
        branch_id,
        owner_id,
        stage_id,
        stage_name,
        cast(amount as decimal(18, 2)) as amount,
        close_date,
        coalesce(close_date < {{ as_of_date() }}, false) as is_overdue,
        cast(days_overdue as integer) as days_overdue,
        coalesce(days_since_update > 30, false) as is_stale,
        cast(days_since_update as integer) as days_since_update

    from open_deals

    where close_date < {{ as_of_date() }}
        or days_since_update > 30

)

select * from final
