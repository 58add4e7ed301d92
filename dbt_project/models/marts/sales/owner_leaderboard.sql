{#- Each owner's bookings, wins, losses, deal size and sales cycle per month and per quarter,
    for every period in which the group created, won or lost a deal (the month rows agree with
    sales_monthly: both come from deal_activity_by_period). -#}

with

{%- for period in ['month', 'quarter'] %}

{{ period }}_activity as (

    {{ deal_activity_by_period(ref('int_crm_deal_outcomes'), period) }}

),
{%- endfor %}

periods as (

    select
        'month' as period_type,
        *
    from month_activity

    union all

    select
        'quarter' as period_type,
        *
    from quarter_activity

),

final as (

    select
        business_id,
        branch_id,
        owner_id,
        cast(period_type as varchar) as period_type,
        period_start,
        cast(new_deals as bigint) as new_deals,
        cast(new_pipeline as decimal(18, 2)) as new_pipeline,
        cast(won_deals as bigint) as won_deals,
        cast(won_amount as decimal(18, 2)) as won_amount,
        cast(lost_deals as bigint) as lost_deals,
        cast(lost_amount as decimal(18, 2)) as lost_amount,
        {{ safe_ratio('won_deals', 'won_deals + lost_deals') }} as win_rate,
        {{ money_per('won_amount', 'won_deals') }} as avg_deal_size,
        cast(cycle_days_sum as bigint) as cycle_days_sum,
        {{ safe_ratio('cycle_days_sum', 'won_deals') }} as avg_cycle_days

    from periods

)

select * from final
