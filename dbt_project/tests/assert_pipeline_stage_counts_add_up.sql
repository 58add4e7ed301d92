-- Every deal of a tenant pair is in exactly one row of v_crm_pipeline_summary (a known stage
-- or the NULL-stage row), and the pair's open/won/lost deals add up to its total.

with

pairs as (

    select
        business_id,
        branch_id,
        sum(deal_count) as deals_in_rows,
        min(total_deals) as total_deals,
        max(total_deals) as total_deals_check,
        min(open_deals + won_deals + lost_deals) as deals_by_state

    from {{ ref('v_crm_pipeline_summary') }}

    group by business_id, branch_id

)

select *
from pairs
where deals_in_rows <> total_deals
    or total_deals <> total_deals_check
    or deals_by_state <> total_deals
