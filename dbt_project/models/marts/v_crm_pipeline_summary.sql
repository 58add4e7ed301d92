-- tenant pairs may be NULL (a deal without a contact), so pairs are matched null-safely

with

deals as (

    select * from {{ ref('int_crm_deals_with_state') }}

),

stages as (

    select * from {{ ref('stg_erp__crm_pipeline_stages') }}

),

pair_totals as (

    select
        business_id,
        branch_id,
        count(*) as total_deals,
        sum(case when deal_state = 'open' then 1 else 0 end) as open_deals,
        coalesce(sum(case when deal_state = 'open' then amount end), 0) as open_amount,
        sum(case when deal_state = 'won' then 1 else 0 end) as won_deals,
        coalesce(sum(case when deal_state = 'won' then amount end), 0) as won_amount,
        sum(case when deal_state = 'lost' then 1 else 0 end) as lost_deals,
        coalesce(sum(case when deal_state = 'lost' then amount end), 0) as lost_amount

    from deals

    group by business_id, branch_id

),

-- every stage for every pair with deals, plus a NULL-stage row where the pair has deals
-- without a (known) stage
pair_stages as (

    select
        pair_totals.business_id,
        pair_totals.branch_id,
        stages.stage_id,
        stages.stage_name,
        stages.stage_order,
        stages.is_won,
        stages.is_lost

    from pair_totals

    cross join stages

    union all

    select distinct
        business_id,
        branch_id,
        cast(null as bigint) as stage_id,
        cast(null as {{ string_type() }}) as stage_name,
        cast(null as bigint) as stage_order,
        cast(null as boolean) as is_won,
        cast(null as boolean) as is_lost

    from deals

    where stage_id is null

),

deals_per_stage as (

    select
        business_id,
        branch_id,
        stage_id,
        count(*) as deal_count,
        sum(amount) as pipeline_value

    from deals

    group by business_id, branch_id, stage_id

),

-- a stage without an `order` sorts as 0, the ERD's default for the column
open_deals_per_order as (

    select
        business_id,
        branch_id,
        coalesce(stage_order, 0) as stage_order,
        count(*) as open_deals

    from deals

    where deal_state = 'open'
        and stage_id is not null

    group by business_id, branch_id, coalesce(stage_order, 0)

),

-- for an open stage: the pair's open deals whose stage order is at least this stage's
open_deals_reaching_stage as (

    select
        pair_stages.business_id,
        pair_stages.branch_id,
        pair_stages.stage_id,
        sum(open_deals_per_order.open_deals) as open_deals_at_or_beyond

    from pair_stages

    inner join open_deals_per_order
        on pair_stages.business_id is not distinct from open_deals_per_order.business_id
        and pair_stages.branch_id is not distinct from open_deals_per_order.branch_id
        and coalesce(pair_stages.stage_order, 0) <= open_deals_per_order.stage_order

    where pair_stages.stage_id is not null

    group by pair_stages.business_id, pair_stages.branch_id, pair_stages.stage_id

),

pipeline_summary as (

    select
        pair_stages.business_id,
        pair_stages.branch_id,
        pair_stages.stage_id,
        pair_stages.stage_name,
        pair_stages.stage_order,
        pair_stages.is_won,
        pair_stages.is_lost,

        cast(coalesce(deals_per_stage.deal_count, 0) as bigint) as deal_count,
        cast(coalesce(deals_per_stage.pipeline_value, 0) as decimal(18, 2)) as pipeline_value,

        cast(pair_totals.total_deals as bigint) as total_deals,
        cast(pair_totals.open_deals as bigint) as open_deals,
        cast(pair_totals.open_amount as decimal(18, 2)) as open_amount,
        cast(pair_totals.won_deals as bigint) as won_deals,
        cast(pair_totals.won_amount as decimal(18, 2)) as won_amount,
        cast(pair_totals.lost_deals as bigint) as lost_deals,
        cast(pair_totals.lost_amount as decimal(18, 2)) as lost_amount,

        {{ safe_ratio('pair_totals.won_deals', 'pair_totals.won_deals + pair_totals.lost_deals') }}
            as win_rate,
        {{ safe_ratio(
            'pair_totals.won_amount', 'pair_totals.won_amount + pair_totals.lost_amount'
        ) }}
            as value_win_rate,

        cast(
            case
                when pair_stages.stage_id is null then 0
                when pair_stages.is_won or pair_stages.is_lost
                    then coalesce(deals_per_stage.deal_count, 0)
                else coalesce(open_deals_reaching_stage.open_deals_at_or_beyond, 0)
                    + pair_totals.won_deals
            end
            as bigint
        ) as stage_reach_count

    from pair_stages

    inner join pair_totals
        on pair_stages.business_id is not distinct from pair_totals.business_id
        and pair_stages.branch_id is not distinct from pair_totals.branch_id

    left join deals_per_stage
        on pair_stages.business_id is not distinct from deals_per_stage.business_id
        and pair_stages.branch_id is not distinct from deals_per_stage.branch_id
        and pair_stages.stage_id is not distinct from deals_per_stage.stage_id

    left join open_deals_reaching_stage
        on pair_stages.business_id is not distinct from open_deals_reaching_stage.business_id
        and pair_stages.branch_id is not distinct from open_deals_reaching_stage.branch_id
        and pair_stages.stage_id = open_deals_reaching_stage.stage_id

),

final as (

    select
        *,
        {{ safe_ratio('stage_reach_count', 'total_deals') }} as stage_reach_rate

    from pipeline_summary

)

select * from final
