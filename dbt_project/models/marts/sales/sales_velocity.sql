{#- Sales velocity per (business_id, branch_id, owner_id) as of the as-of date: the open
    pipeline now, and the deals won or lost in the trailing 365 days (won or lost date after
    A − 365 days and on or before A). velocity_per_day = open_deals × win_rate × avg_deal_size
    ÷ avg_cycle_days, the expected bookings per day. The summed parts are columns too, so a
    page can re-aggregate over owners. -#}

{%- set window_start = dbt.dateadd('day', -365, as_of_date()) -%}

with

deals as (

    select * from {{ ref('int_crm_deal_outcomes') }}

),

owners as (

    select
        business_id,
        branch_id,
        owner_id,
        sum(case when deal_state = 'open' then 1 else 0 end) as open_deals,
        coalesce(sum(case when deal_state = 'open' then amount end), 0) as open_amount,
        sum(case when won_in_window then 1 else 0 end) as won_deals,
        sum(case when lost_in_window then 1 else 0 end) as lost_deals,
        coalesce(sum(case when won_in_window then amount end), 0) as won_amount,
        coalesce(sum(case when won_in_window then cycle_days end), 0) as cycle_days_sum

    from (
        select
            *,
            coalesce(
                won_date > cast({{ window_start }} as date) and won_date <= {{ as_of_date() }},
                false
            ) as won_in_window,
            coalesce(
                lost_date > cast({{ window_start }} as date) and lost_date <= {{ as_of_date() }},
                false
            ) as lost_in_window
        from deals
    ) as windowed_deals

    group by business_id, branch_id, owner_id

),

final as (

    select
        business_id,
        branch_id,
        owner_id,
        cast(open_deals as bigint) as open_deals,
        cast(open_amount as decimal(18, 2)) as open_amount,
        cast(won_deals as bigint) as won_deals,
        cast(lost_deals as bigint) as lost_deals,
        cast(won_amount as decimal(18, 2)) as won_amount,
        cast(cycle_days_sum as bigint) as cycle_days_sum,
        {{ safe_ratio('won_deals', 'won_deals + lost_deals') }} as win_rate,
        {{ money_per('won_amount', 'won_deals') }} as avg_deal_size,
        {{ safe_ratio('cycle_days_sum', 'won_deals') }} as avg_cycle_days,
        -- open × (won / (won + lost)) × (won_amount / won) ÷ (cycle_sum / won), simplified so
        -- that no rounded average enters it; NULL when a part is NULL or the cycle is 0
        cast(
            case
                when won_deals > 0 and cycle_days_sum > 0
                    then open_deals * {{ safe_ratio('won_amount', 'won_deals + lost_deals') }}
                        * won_deals / cycle_days_sum
            end
            as decimal(18, 2)
        ) as velocity_per_day

    from owners

    where open_deals > 0
        or won_deals > 0
        or lost_deals > 0

)

select * from final
