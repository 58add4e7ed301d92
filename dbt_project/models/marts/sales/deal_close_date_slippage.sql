{#- How often and how far each deal's close date moved later, from its recorded versions
    (int_crm_deal_versions, the deal history up to the as-of date): one row per deal with
    history. A move later is a version whose close date is after the previous version's;
    a close date set where there was none, cleared, or moved earlier is no slip. Owner and
    tenant keys are the deal's current ones (the history records no version for an owner
    change alone); a deal gone from the ERP keeps those of its latest version. -#}

with

versions as (

    select * from {{ ref('int_crm_deal_versions') }}

),

contacts as (

    select * from {{ ref('stg_erp__contacts') }}

),

current_deals as (

    select * from {{ ref('int_crm_deals_with_state') }}

),

version_moves as (

    select
        deal_id,
        version_number,
        contact_id,
        owner_id,
        close_date,
        lag(close_date) over (partition by deal_id order by version_number)
            as previous_close_date,
        row_number() over (partition by deal_id order by version_number desc) as recency

    from versions

),

slips as (

    select
        *,
        case
            when close_date > previous_close_date
                then {{ dbt.datediff('previous_close_date', 'close_date', 'day') }}
        end as slip_days

    from version_moves

),

deal_slippage as (

    select
        deal_id,
        max(case when version_number = 1 then close_date end) as first_close_date,
        max(case when recency = 1 then close_date end) as current_close_date,
        max(case when recency = 1 then contact_id end) as contact_id,
        max(case when recency = 1 then owner_id end) as owner_id,
        count(slip_days) as slip_count,
        coalesce(sum(slip_days), 0) as slip_days_total,
        coalesce(max(slip_days), 0) as max_slip_days

    from slips

    group by deal_id

),

final as (

    select
        deal_slippage.deal_id,
        case
            when current_deals.deal_id is not null then current_deals.business_id
            else contacts.business_id
        end as business_id,
        case
            when current_deals.deal_id is not null then current_deals.branch_id
            else contacts.branch_id
        end as branch_id,
        case
            when current_deals.deal_id is not null then current_deals.owner_id
            else deal_slippage.owner_id
        end as owner_id,
        deal_slippage.first_close_date,
        deal_slippage.current_close_date,
        cast(deal_slippage.slip_count as bigint) as slip_count,
        cast(deal_slippage.slip_days_total as bigint) as slip_days_total,
        cast(deal_slippage.max_slip_days as bigint) as max_slip_days

    from deal_slippage

    left join current_deals
        on deal_slippage.deal_id = current_deals.deal_id

    left join contacts
        on deal_slippage.contact_id = contacts.contact_id

)

select * from final
