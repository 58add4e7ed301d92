{#- One row per (business_id, branch_id, owner_id): what each deal owner books and holds.
    Tenant keys are the deals' contacts' (as in v_crm_pipeline_summary); an owner who sells
    for two branches has a row for each. Deals without an owner share the owner_id NULL row. -#}

with

deals as (

    select * from {{ ref('int_crm_deals_with_state') }}

),

won_dates as (

    select * from {{ ref('int_crm_deal_won_dates') }}

),

-- the sales cycle of a won deal: created (reporting date) to won (the won event's date,
-- else the close date); NULL when either is missing or the win predates the creation
deal_cycles as (

    select
        deals.*,
        case
            when deals.deal_state = 'won'
                and {{ to_reporting_date('deals.created_at') }}
                <= coalesce(won_dates.won_event_date, deals.close_date)
                then {{ dbt.datediff(
                    to_reporting_date('deals.created_at'),
                    'coalesce(won_dates.won_event_date, deals.close_date)',
                    'day'
                ) }}
        end as sales_cycle_days

    from deals

    left join won_dates
        on deals.deal_id = won_dates.deal_id

),

owners as (

    select
        business_id,
        branch_id,
        owner_id,
        count(*) as deals,
        sum(case when deal_state = 'open' then 1 else 0 end) as open_deals,
        sum(case when deal_state = 'won' then 1 else 0 end) as won_deals,
        sum(case when deal_state = 'lost' then 1 else 0 end) as lost_deals,
        coalesce(sum(case when deal_state = 'open' then amount end), 0) as open_pipeline_value,
        coalesce(sum(case when deal_state = 'won' then amount end), 0) as bookings,
        coalesce(sum(case when deal_state = 'lost' then amount end), 0) as lost_amount,
        count(sales_cycle_days) as deals_with_sales_cycle,
        avg(cast(sales_cycle_days as {{ float_type() }})) as avg_sales_cycle_days

    from deal_cycles

    group by business_id, branch_id, owner_id

),

final as (

    select
        business_id,
        branch_id,
        owner_id,
        cast(deals as bigint) as deals,
        cast(open_deals as bigint) as open_deals,
        cast(won_deals as bigint) as won_deals,
        cast(lost_deals as bigint) as lost_deals,
        cast(bookings as decimal(18, 2)) as bookings,
        cast(lost_amount as decimal(18, 2)) as lost_amount,
        cast(open_pipeline_value as decimal(18, 2)) as open_pipeline_value,
        {{ safe_ratio('won_deals', 'won_deals + lost_deals') }} as win_rate,
        {{ safe_ratio('bookings', 'bookings + lost_amount') }} as value_win_rate,
        {{ money_per('bookings', 'won_deals') }} as average_deal_size,
        cast(deals_with_sales_cycle as bigint) as deals_with_sales_cycle,
        avg_sales_cycle_days

    from owners

)

select * from final
