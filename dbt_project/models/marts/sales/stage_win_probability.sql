{#- The probability that a deal now in an open stage is won, learned from the recorded deal
    history: of the deals seen in the stage that have since been won or lost, the share won,
    shrunk toward the rate over all businesses when a business has few observations. A stage
    that no business has observations of yet (the first runs of a pipeline) falls back to the
    win rate of all closed deals now, so that a forecast exists from the first run. A row of
    the seed stage_probability_overrides wins for its stage. -#}

{%- set prior_weight = var('stage_probability_prior_weight', 10) -%}

with

visits as (

    select * from {{ ref('fct_deal_stage_history') }}

),

stages as (

    select * from {{ ref('stg_erp__crm_pipeline_stages') }}

),

deals as (

    select * from {{ ref('int_crm_deal_outcomes') }}

),

overrides as (

    select * from {{ ref('stage_probability_overrides') }}

),

open_stages as (

    select
        stage_id,
        stage_name,
        stage_order

    from stages

    where not is_won
        and not is_lost

),

-- every business that has a deal, including the NULL business of deals without a contact
businesses as (

    select distinct business_id

    from deals

),

-- each visit beside where its deal's recorded history ends: the latest visit's state and
-- tenant. A window over the visits, not a join of the visits to their own latest rows:
-- PostgreSQL cannot estimate a filtered scan of the materialised `visits` CTE and plans such
-- a join as a nested loop, quadratic in the deals.
visits_with_outcome as (

    select
        deal_id,
        stage_id,
        deal_state as visit_state,
        first_value(business_id) over (
            partition by deal_id order by visit_number desc
        ) as outcome_business_id,
        first_value(deal_state) over (
            partition by deal_id order by visit_number desc
        ) as outcome_state

    from visits

),

-- deals seen in an open stage that have since been won or lost: once per deal and stage
observations as (

    select distinct
        outcome_business_id as business_id,
        stage_id,
        deal_id,
        outcome_state

    from visits_with_outcome

    where visit_state = 'open'
        and stage_id is not null
        and outcome_state in ('won', 'lost')

),

-- what stands in for a stage's pooled rate before any history: won / (won + lost) of all
-- deals now
closed_deals as (

    select
        sum(case when deal_state = 'won' then 1 else 0 end) as won_deals,
        sum(case when deal_state in ('won', 'lost') then 1 else 0 end) as closed_deals

    from deals

),

business_counts as (

    select
        business_id,
        stage_id,
        count(*) as observations,
        sum(case when outcome_state = 'won' then 1 else 0 end) as won_observations

    from observations

    group by business_id, stage_id

),

pooled_counts as (

    select
        stage_id,
        count(*) as observations,
        sum(case when outcome_state = 'won' then 1 else 0 end) as won_observations

    from observations

    group by stage_id

),

rates as (

    select
        businesses.business_id,
        open_stages.stage_id,
        open_stages.stage_name,
        open_stages.stage_order,
        coalesce(business_counts.observations, 0) as observations,
        coalesce(business_counts.won_observations, 0) as won_observations,
        {{ safe_ratio('business_counts.won_observations', 'business_counts.observations') }}
            as history_rate,
        coalesce(
            {{ safe_ratio('pooled_counts.won_observations', 'pooled_counts.observations') }},
            {{ safe_ratio('closed_deals.won_deals', 'closed_deals.closed_deals') }}
        ) as pooled_rate,
        overrides.probability as override_probability

    from businesses

    cross join open_stages

    cross join closed_deals

    left join business_counts
        on businesses.business_id is not distinct from business_counts.business_id
        and open_stages.stage_id = business_counts.stage_id

    left join pooled_counts
        on open_stages.stage_id = pooled_counts.stage_id

    left join overrides
        on open_stages.stage_id = overrides.stage_id

),

final as (

    select
        business_id,
        stage_id,
        stage_name,
        stage_order,
        cast(observations as bigint) as observations,
        cast(won_observations as bigint) as won_observations,
        history_rate,
        pooled_rate,
        cast(
            case
                when override_probability is not null then override_probability
                -- (won + k × pooled) / (observations + k); NULL only without any
                -- observation and any closed deal
                when pooled_rate is not null
                    then (won_observations + {{ prior_weight }} * pooled_rate)
                        / (observations + {{ prior_weight }})
            end
            as {{ float_type() }}
        ) as probability,
        case
            when override_probability is not null then 'seed'
            when observations > 0 then 'history'
            else 'pooled'
        end as probability_source

    from rates

)

select * from final
