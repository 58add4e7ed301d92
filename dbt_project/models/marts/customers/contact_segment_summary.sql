{#- One row per (business_id, branch_id, contact_type, customer_group_name): the contact
    summary rolled up to the grain the Customers page filters and groups by, so the page reads
    aggregated rows instead of one row per contact. Sums of these sums are sums over contacts.
    Groups are keyed by name (as the page shows them): contacts without a group and contacts
    whose group the ERP does not know share the customer_group_name NULL row. -#}

with

contacts as (

    select * from {{ ref('v_crm_contact_summary') }}

),

segments as (

    select
        business_id,
        branch_id,
        contact_type,
        customer_group_name,
        count(*) as contacts,
        sum(won_revenue) as won_revenue,
        sum(won_deal_count) as won_deal_count,
        sum(open_pipeline_value) as open_pipeline_value,
        sum(account_balance) as account_balance,
        sum(advance_balance) as advance_balance,
        sum(total_sale_due) as total_sale_due,
        sum(total_sale_return_due) as total_sale_return_due,
        sum(credit_limit) as credit_limit

    from contacts

    group by business_id, branch_id, contact_type, customer_group_name

),

final as (

    select
        business_id,
        branch_id,
        contact_type,
        customer_group_name,
        cast(contacts as bigint) as contacts,
        cast(won_revenue as decimal(18, 2)) as won_revenue,
        cast(won_deal_count as bigint) as won_deal_count,
        cast(open_pipeline_value as decimal(18, 2)) as open_pipeline_value,
        cast(account_balance as decimal(18, 2)) as account_balance,
        cast(advance_balance as decimal(18, 2)) as advance_balance,
        cast(total_sale_due as decimal(18, 2)) as total_sale_due,
        cast(total_sale_return_due as decimal(18, 2)) as total_sale_return_due,
        cast(credit_limit as decimal(18, 2)) as credit_limit

    from segments

)

select * from final
