{#- One row per (business_id, branch_id, customer_group_id): the contact summary rolled up
    by customer group. Like the contact summary, soft-deleted contacts are left out. Contacts
    without a group, or with one the ERP does not know, roll up as they are recorded
    (customer_group_name NULL). -#}

with

contacts as (

    select * from {{ ref('v_crm_contact_summary') }}

),

groups_per_tenant as (

    select
        business_id,
        branch_id,
        customer_group_id,
        max(customer_group_name) as customer_group_name,
        count(*) as contacts,
        sum(case when deal_count > 0 then 1 else 0 end) as contacts_with_deals,
        sum(credit_limit) as credit_limit,
        sum(account_balance) as account_balance,
        sum(advance_balance) as advance_balance,
        sum(total_sale_due) as total_sale_due,
        sum(total_sale_return_due) as total_sale_return_due,
        sum(lead_count) as leads,
        sum(deal_count) as deals,
        sum(open_deal_count) as open_deals,
        sum(won_deal_count) as won_deals,
        sum(lost_deal_count) as lost_deals,
        sum(open_pipeline_value) as open_pipeline_value,
        sum(won_revenue) as won_revenue

    from contacts

    group by business_id, branch_id, customer_group_id

),

final as (

    select
        business_id,
        branch_id,
        customer_group_id,
        customer_group_name,
        cast(contacts as bigint) as contacts,
        cast(contacts_with_deals as bigint) as contacts_with_deals,
        cast(credit_limit as decimal(18, 2)) as credit_limit,
        cast(account_balance as decimal(18, 2)) as account_balance,
        cast(advance_balance as decimal(18, 2)) as advance_balance,
        cast(total_sale_due as decimal(18, 2)) as total_sale_due,
        cast(total_sale_return_due as decimal(18, 2)) as total_sale_return_due,
        cast(leads as bigint) as leads,
        cast(deals as bigint) as deals,
        cast(open_deals as bigint) as open_deals,
        cast(won_deals as bigint) as won_deals,
        cast(lost_deals as bigint) as lost_deals,
        cast(open_pipeline_value as decimal(18, 2)) as open_pipeline_value,
        cast(won_revenue as decimal(18, 2)) as won_revenue,
        {{ safe_ratio('won_deals', 'won_deals + lost_deals') }} as win_rate,
        {{ money_per('won_revenue', 'contacts') }} as won_revenue_per_contact

    from groups_per_tenant

)

select * from final
