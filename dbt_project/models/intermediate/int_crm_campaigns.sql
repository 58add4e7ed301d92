{#- One row per campaign with its tenant keys and its flight as reporting dates, shared by the
    daily campaign mart and campaign attribution (docs/contract.md section 5: a campaign's
    business is its branch's when `branches` knows the branch, else its seller contact's). -#}

with

campaigns as (

    select * from {{ ref('stg_erp__crm_campaigns') }}

),

branches as (

    select * from {{ ref('stg_erp__branches') }}

),

contacts as (

    select * from {{ ref('stg_erp__contacts') }}

),

final as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.campaign_type,
        campaigns.campaign_status,
        campaigns.branch_id,
        coalesce(branches.business_id, sellers.business_id) as business_id,
        campaigns.budget,
        {{ to_reporting_date('campaigns.starts_at') }} as flight_start_date,
        {{ to_reporting_date('campaigns.ends_at') }} as flight_end_date

    from campaigns

    left join branches
        on campaigns.branch_id = branches.branch_id

    left join contacts as sellers
        on campaigns.seller_contact_id = sellers.contact_id

)

select * from final
