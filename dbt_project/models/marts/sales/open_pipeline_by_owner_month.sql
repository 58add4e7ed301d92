{#- One row per (business_id, branch_id, owner_id, close_month, stage_id) holding open deals:
    the open pipeline by deal owner and expected close month, small enough for the dashboards
    to read without touching deal-level rows. Tenant keys are the deals' contacts' (as in
    v_crm_pipeline_summary), so the rows add up to its open_deals and open_amount. Deals
    without an owner, a close date or a known stage keep NULL in that key. -#}

with

deals as (

    select * from {{ ref('int_crm_deals_with_state') }}

),

open_deals as (

    select
        business_id,
        branch_id,
        owner_id,
        cast({{ dbt.date_trunc('month', 'close_date') }} as date) as close_month,
        stage_id,
        amount

    from deals

    where deal_state = 'open'

),

grouped as (

    select
        business_id,
        branch_id,
        owner_id,
        close_month,
        stage_id,
        count(*) as open_deals,
        coalesce(sum(amount), 0) as open_amount

    from open_deals

    group by business_id, branch_id, owner_id, close_month, stage_id

),

final as (

    select
        business_id,
        branch_id,
        owner_id,
        close_month,
        stage_id,
        cast(open_deals as bigint) as open_deals,
        cast(open_amount as decimal(18, 2)) as open_amount

    from grouped

)

select * from final
