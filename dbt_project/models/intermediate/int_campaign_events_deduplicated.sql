{#- A table, not a view: five models and five data tests read it, and as a view each of them
    repeated the deduplication of every event (17–44 s each at `large` on PostgreSQL, 5–8 s
    on DuckDB; BENCHMARKS.md). -#}

{{ config(materialized='table') }}

with

events as (

    select * from {{ ref('stg_events__campaign_events') }}

),

ranked_deliveries as (

    select
        *,
        row_number() over (
            partition by event_source, event_id
            -- the first landed copy wins (see the macro)
            order by {{ first_landed_order() }}
        ) as delivery_rank

    from events

),

first_deliveries as (

    select
        event_source,
        event_id,
        event_type,
        event_time,
        {{ to_reporting_date('event_time') }} as event_date,
        campaign_id,
        contact_id,
        lead_id,
        deal_id,
        revenue,
        business_id,
        branch_id,
        landing_date,
        file_path,
        line_number

    from ranked_deliveries

    where delivery_rank = 1

),

final as (

    select * from first_deliveries

)

select * from final
