{#- The forecast per (business_id, branch_id, owner_id, month) from the as-of date's month on:
    open deals by expected close month (best case, and weighted by the probability of their
    stage from stage_win_probability), beside what is already won in that month. An open
    deal whose close date is NULL or before the as-of date's month is expected in the as-of
    date's month, never in a past one. -#}

with

deals as (

    select * from {{ ref('int_crm_deal_outcomes') }}

),

probabilities as (

    select * from {{ ref('stage_win_probability') }}

),

-- a deal without a stage is taken to be at the start of the pipeline: the pooled rate of
-- the open stage with the lowest order
first_stage as (

    select pooled_rate

    from (
        select
            pooled_rate,
            row_number() over (order by stage_order, stage_id) as stage_rank
        from probabilities
    ) as ranked_stages

    where stage_rank = 1

),

as_of_month as (

    select cast({{ dbt.date_trunc('month', as_of_date()) }} as date) as forecast_start

),

open_deals as (

    select
        deals.business_id,
        deals.branch_id,
        deals.owner_id,
        case
            when deals.close_date is null
                or deals.close_date < as_of_month.forecast_start
                then as_of_month.forecast_start
            else cast({{ dbt.date_trunc('month', 'deals.close_date') }} as date)
        end as forecast_month,
        deals.amount,
        deals.amount * case
            when deals.stage_id is null then first_stage.pooled_rate
            else probabilities.probability
        end as weighted_amount

    from deals

    cross join as_of_month

    left join probabilities
        on deals.business_id is not distinct from probabilities.business_id
        and deals.stage_id = probabilities.stage_id

    left join first_stage
        on deals.stage_id is null

    where deals.deal_state = 'open'

),

won_deals as (

    select
        deals.business_id,
        deals.branch_id,
        deals.owner_id,
        cast({{ dbt.date_trunc('month', 'deals.won_date') }} as date) as forecast_month,
        deals.amount

    from deals

    cross join as_of_month

    where deals.deal_state = 'won'
        and deals.won_date >= as_of_month.forecast_start

),

forecast_rows as (

    select
        business_id,
        branch_id,
        owner_id,
        forecast_month,
        1 as open_deal,
        amount as open_amount,
        weighted_amount,
        0 as won_deal,
        cast(null as decimal(18, 2)) as won_amount
    from open_deals

    union all

    select
        business_id,
        branch_id,
        owner_id,
        forecast_month,
        0 as open_deal,
        cast(null as decimal(18, 2)) as open_amount,
        cast(null as {{ float_type() }}) as weighted_amount,
        1 as won_deal,
        amount as won_amount
    from won_deals

),

final as (

    select
        business_id,
        branch_id,
        owner_id,
        forecast_month as {{ adapter.quote('month') }},
        cast(sum(open_deal) as bigint) as open_deals,
        cast(coalesce(sum(open_amount), 0) as decimal(18, 2)) as best_case_amount,
        cast(coalesce(sum(weighted_amount), 0) as decimal(18, 2)) as weighted_amount,
        cast(sum(won_deal) as bigint) as won_deals,
        cast(coalesce(sum(won_amount), 0) as decimal(18, 2)) as won_amount

    from forecast_rows

    group by business_id, branch_id, owner_id, forecast_month

)

select * from final
