with

contacts as (

    select * from {{ ref('stg_erp__contacts') }}

),

customer_groups as (

    select * from {{ ref('stg_erp__customer_groups') }}

),

contact_accounts as (

    select * from {{ ref('stg_erp__contact_accounts') }}

),

leads as (

    select * from {{ ref('stg_erp__crm_leads') }}

),

deals as (

    select * from {{ ref('int_crm_deals_with_state') }}

),

account_totals as (

    select
        contact_id,
        sum(account_balance) as account_balance,
        sum(advance_balance) as advance_balance,
        sum(total_sale_due) as total_sale_due,
        sum(total_sale_return_due) as total_sale_return_due

    from contact_accounts

    group by contact_id

),

lead_totals as (

    select
        contact_id,
        count(*) as lead_count

    from leads

    group by contact_id

),

deal_totals as (

    select
        contact_id,
        count(*) as deal_count,
        sum(case when deal_state = 'open' then 1 else 0 end) as open_deal_count,
        sum(case when deal_state = 'won' then 1 else 0 end) as won_deal_count,
        sum(case when deal_state = 'lost' then 1 else 0 end) as lost_deal_count,
        sum(case when deal_state = 'open' then amount end) as open_pipeline_value,
        sum(case when deal_state = 'won' then amount end) as won_revenue

    from deals

    group by contact_id

),

contact_summary as (

    select
        contacts.contact_id as contact_pk,
        contacts.contact_code,
        contacts.business_id,
        contacts.branch_id,
        contacts.contact_type,
        contacts.account_type,
        contacts.customer_group_id,
        customer_groups.customer_group_name,
        cast(contacts.credit_limit as decimal(18, 2)) as credit_limit,
        contacts.added_on,

        cast(coalesce(account_totals.account_balance, 0) as decimal(18, 2))
            as account_balance,
        cast(coalesce(account_totals.advance_balance, 0) as decimal(18, 2))
            as advance_balance,
        cast(coalesce(account_totals.total_sale_due, 0) as decimal(18, 2))
            as total_sale_due,
        cast(coalesce(account_totals.total_sale_return_due, 0) as decimal(18, 2))
            as total_sale_return_due,

        cast(coalesce(lead_totals.lead_count, 0) as bigint) as lead_count,
        cast(coalesce(deal_totals.deal_count, 0) as bigint) as deal_count,
        cast(coalesce(deal_totals.open_deal_count, 0) as bigint) as open_deal_count,
        cast(coalesce(deal_totals.won_deal_count, 0) as bigint) as won_deal_count,
        cast(coalesce(deal_totals.lost_deal_count, 0) as bigint) as lost_deal_count,
        cast(coalesce(deal_totals.open_pipeline_value, 0) as decimal(18, 2))
            as open_pipeline_value,
        cast(coalesce(deal_totals.won_revenue, 0) as decimal(18, 2)) as won_revenue

    from contacts

    left join customer_groups
        on contacts.customer_group_id = customer_groups.customer_group_id

    left join account_totals
        on contacts.contact_id = account_totals.contact_id

    left join lead_totals
        on contacts.contact_id = lead_totals.contact_id

    left join deal_totals
        on contacts.contact_id = deal_totals.contact_id

    where not contacts.is_deleted

),

final as (

    select * from contact_summary

)

select * from final
