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
        new_deals,
        new_pipeline,
        won_deals,
        won_amount,
        lost_deals,
        lost_amount,
        win_rate

    from monthly_activity

)

select * from final
