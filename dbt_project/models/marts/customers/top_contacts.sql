{#- Per (business_id, branch_id), the 20 live contacts with the most won revenue (ties by
    contact_pk). Any filter or tenant scope selects whole pairs, so the top N of a selection
    is always among the top N of its pairs: a page can list up to 20 top contacts from this
    small table instead of ranking every contact. Contacts without won revenue are left out. -#}

with

contacts as (

    select * from {{ ref('v_crm_contact_summary') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by business_id, branch_id
            order by won_revenue desc, contact_pk asc
        ) as tenant_rank

    from contacts

    where won_revenue > 0

),

final as (

    select
        contact_pk,
        contact_code,
        business_id,
        branch_id,
        contact_type,
        customer_group_name,
        won_revenue,
        won_deal_count,
        open_pipeline_value,
        total_sale_due,
        account_balance,
        cast(tenant_rank as bigint) as tenant_rank

    from ranked

    where tenant_rank <= 20

)

select * from final
