{#- True stage-to-stage conversion from the recorded history: for each open stage and tenant
    pair, how many deals were seen in it, and of those how many later moved on (to an open
    stage of higher order, or won), were lost, moved back, or are still there. Unlike
    v_crm_pipeline_summary's stage_reach (inferred from where deals are now), this counts
    moves that were observed. -#}

with

visits as (

    select * from {{ ref('fct_deal_stage_history') }}

),

stages as (

    select * from {{ ref('stg_erp__crm_pipeline_stages') }}

),

open_stage_visits as (

    select
        visits.*,
        row_number() over (
            partition by visits.deal_id, visits.stage_id order by visits.visit_number
        ) as stage_visit_rank

    from visits

    inner join stages
        on visits.stage_id = stages.stage_id
    where not stages.is_won
        and not stages.is_lost

),

-- for each deal and open stage: what became of it after its first visit to the stage
deal_outcomes as (

    select
        open_stage_visits.business_id,
        open_stage_visits.branch_id,
        open_stage_visits.stage_id,
        open_stage_visits.deal_id,
        max(case
            when later.deal_state = 'won' then 1
            when later.deal_state = 'open' and later.stage_order > open_stage_visits.stage_order
                then 1
            else 0
        end) as has_advanced,
        max(case when later.deal_state = 'lost' then 1 else 0 end) as has_lost,
        max(case
            when later.deal_state = 'open' and later.stage_order < open_stage_visits.stage_order
                then 1
            else 0
        end) as has_moved_back

    from open_stage_visits

    left join visits as later
        on open_stage_visits.deal_id = later.deal_id
        and open_stage_visits.visit_number < later.visit_number

    where open_stage_visits.stage_visit_rank = 1

    group by
        open_stage_visits.business_id,
        open_stage_visits.branch_id,
        open_stage_visits.stage_id,
        open_stage_visits.deal_id

),

completed_visit_days as (

    select
        business_id,
        branch_id,
        stage_id,
        avg(cast(days_in_stage as {{ float_type() }})) as avg_days_in_stage

    from open_stage_visits

    where not is_current

    group by business_id, branch_id, stage_id

),

conversion as (

    select
        business_id,
        branch_id,
        stage_id,
        count(*) as deals_entered,
        sum(has_advanced) as deals_advanced,
        sum(case when has_advanced = 0 and has_lost = 1 then 1 else 0 end) as deals_lost,
        sum(has_moved_back) as deals_moved_back,
        sum(case when has_advanced = 0 and has_lost = 0 then 1 else 0 end) as deals_not_moved_on

    from deal_outcomes

    group by business_id, branch_id, stage_id

),

final as (

    select
        conversion.business_id,
        conversion.branch_id,
        conversion.stage_id,
        stages.stage_name,
        stages.stage_order,
        cast(conversion.deals_entered as bigint) as deals_entered,
        cast(conversion.deals_advanced as bigint) as deals_advanced,
        cast(conversion.deals_lost as bigint) as deals_lost,
        cast(conversion.deals_moved_back as bigint) as deals_moved_back,
        cast(conversion.deals_not_moved_on as bigint) as deals_not_moved_on,
        {{ safe_ratio('conversion.deals_advanced', 'conversion.deals_entered') }}
            as conversion_rate,
        completed_visit_days.avg_days_in_stage

    from conversion

    inner join stages
        on conversion.stage_id = stages.stage_id

    left join completed_visit_days
        on conversion.business_id is not distinct from completed_visit_days.business_id
        and conversion.branch_id is not distinct from completed_visit_days.branch_id
        and conversion.stage_id = completed_visit_days.stage_id

)

select * from final
