-- Layers reconcile: per tenant pair, the pipeline's deal totals equal the contact
-- summary's plus the deals the contact summary leaves out by definition (those of
-- soft-deleted contacts, and those without a known contact). Returns the pairs that differ.

with

pipeline_pairs as (

    select * from {{ ref('pipeline_by_tenant') }}

),

contact_pairs as (

    select
        business_id,
        branch_id,
        sum(deal_count) as total_deals,
        sum(open_deal_count) as open_deals,
        sum(open_pipeline_value) as open_amount,
        sum(won_deal_count) as won_deals,
        sum(won_revenue) as won_amount,
        sum(lost_deal_count) as lost_deals

    from {{ ref('v_crm_contact_summary') }}

    group by business_id, branch_id

),

-- deals of soft-deleted or unknown contacts: in the pipeline, not in the contact summary
left_out_pairs as (

    select
        deals.business_id,
        deals.branch_id,
        count(*) as total_deals,
        sum(case when deals.deal_state = 'open' then 1 else 0 end) as open_deals,
        sum(case when deals.deal_state = 'open' then deals.amount else 0 end) as open_amount,
        sum(case when deals.deal_state = 'won' then 1 else 0 end) as won_deals,
        sum(case when deals.deal_state = 'won' then deals.amount else 0 end) as won_amount,
        sum(case when deals.deal_state = 'lost' then 1 else 0 end) as lost_deals

    from {{ ref('int_crm_deals_with_state') }} as deals

    left join {{ ref('stg_erp__contacts') }} as contacts
        on deals.contact_id = contacts.contact_id

    where contacts.contact_id is null
        or contacts.is_deleted

    group by deals.business_id, deals.branch_id

),

both_sides as (

    select
        business_id,
        branch_id,
        total_deals,
        open_deals,
        open_amount,
        won_deals,
        won_amount,
        lost_deals
    from contact_pairs
    union all
    select
        business_id,
        branch_id,
        total_deals,
        open_deals,
        open_amount,
        won_deals,
        won_amount,
        lost_deals
    from left_out_pairs

),

summed as (

    select
        business_id,
        branch_id,
        sum(total_deals) as total_deals,
        sum(open_deals) as open_deals,
        coalesce(sum(open_amount), 0) as open_amount,
        sum(won_deals) as won_deals,
        coalesce(sum(won_amount), 0) as won_amount,
        sum(lost_deals) as lost_deals

    from both_sides

    group by business_id, branch_id

    -- contacts without deals add pairs with zero deals; the pipeline has no row for them
    having sum(total_deals) > 0

),

-- every pair on either side (PostgreSQL cannot full-join on `is not distinct from`)
all_pairs as (

    select
        business_id,
        branch_id
    from pipeline_pairs
    union
    select
        business_id,
        branch_id
    from summed

)

select
    all_pairs.business_id,
    all_pairs.branch_id,
    pipeline_pairs.total_deals as pipeline_deals,
    summed.total_deals as contact_deals

from all_pairs

left join pipeline_pairs
    on all_pairs.business_id is not distinct from pipeline_pairs.business_id
    and all_pairs.branch_id is not distinct from pipeline_pairs.branch_id

left join summed
    on all_pairs.business_id is not distinct from summed.business_id
    and all_pairs.branch_id is not distinct from summed.branch_id

where pipeline_pairs.total_deals is distinct from summed.total_deals
    or pipeline_pairs.open_deals is distinct from summed.open_deals
    or pipeline_pairs.open_amount is distinct from summed.open_amount
    or pipeline_pairs.won_deals is distinct from summed.won_deals
    or pipeline_pairs.won_amount is distinct from summed.won_amount
    or pipeline_pairs.lost_deals is distinct from summed.lost_deals
