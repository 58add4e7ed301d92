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
        cast(period_type as {{ string_type() }}) as period_type,
        period_start,
        new_deals,
        new_pipeline,
        won_deals,
        won_amount,
        lost_deals,
        lost_amount,
        win_rate,
        {{ money_per('won_amount', 'won_deals') }} as avg_deal_size,
        cycle_days_sum,
        {{ safe_ratio('cycle_days_sum', 'won_deals') }} as avg_cycle_days

    from periods

)

select * from final
