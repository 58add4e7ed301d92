{#- Bookings and new pipeline per (business_id, branch_id, owner_id, month): docs/contract.md
    section 6. -#}

with

monthly_activity as (

    {{ deal_activity_by_period(ref('int_crm_deal_outcomes'), 'month') }}

),

final as (

    select
        business_id,
        branch_id,
        owner_id,
        period_start as {{ adapter.quote('month') }},
        cast(new_deals as bigint) as new_deals,
        cast(new_pipeline as decimal(18, 2)) as new_pipeline,
        cast(won_deals as bigint) as won_deals,
        cast(won_amount as decimal(18, 2)) as won_amount,
        cast(lost_deals as bigint) as lost_deals,
        cast(lost_amount as decimal(18, 2)) as lost_amount,
        {{ safe_ratio('won_deals', 'won_deals + lost_deals') }} as win_rate

    from monthly_activity

)

select * from final
