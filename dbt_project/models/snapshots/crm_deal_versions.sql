{#- Deal history: one row per version of a deal's stage, amount and close date. The ERP keeps
    only the current state, so every `dbt build` appends the deals whose tracked columns
    changed since their latest recorded version (and the deals never seen before); rows are
    never updated or deleted, so plain inserts (`append`) are the only write, on every
    warehouse. A version's end is the next version's start (int_crm_deal_versions).

    A version is valid from the run's AS-OF DATE, not the wall-clock time of the run
    (recorded_at = midnight of the as-of date), so a run for date D records the state
    "as of D" even when it runs later (the schedule runs after midnight for yesterday; a
    backfill runs for past dates). A rerun of the same date that sees a change records it one
    second after the latest recorded version (still on day D; the earlier version of that day
    is superseded), which keeps (deal_id, recorded_at) unique. A rerun that sees no change
    appends nothing. A run whose as-of date is before the latest recorded version appends
    nothing: history is only written forward. A deal deleted from the ERP keeps its last
    version.

    First build: when the warehouse holds the history the dbt snapshot
    `snapshots.snp_erp__crm_deals` recorded before this model replaced it, the table starts
    from the snapshot's versions (dbt_valid_from becomes recorded_at) and this run's changes
    are compared against them. `full_refresh=false`: `--full-refresh` never rebuilds it, as
    the history cannot be recomputed from the ERP. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    full_refresh=false,
    on_schema_change='fail',
) }}

{%- set snapshot = none if is_incremental() else legacy_deal_snapshot() %}

with

deals as (

    select * from {{ ref('stg_erp__crm_deals') }}

),

-- every version recorded so far: this table, or on the first build the snapshot's history
-- (or none)
recorded as (

    {% if is_incremental() -%}
    select
        deal_id,
        contact_id,
        owner_id,
        stage_id,
        amount,
        close_date,
        created_at,
        recorded_at

    from {{ this }}
    {%- elif snapshot -%}
    select
        deal_id,
        contact_id,
        owner_id,
        stage_id,
        amount,
        close_date,
        created_at,
        dbt_valid_from as recorded_at

    from {{ snapshot }}
    {%- else -%}
    select
        deal_id,
        contact_id,
        owner_id,
        stage_id,
        amount,
        close_date,
        created_at,
        cast(null as timestamp) as recorded_at

    from deals

    where 1 = 0
    {%- endif %}

),

ranked_versions as (

    select
        deal_id,
        stage_id,
        amount,
        close_date,
        row_number() over (partition by deal_id order by recorded_at desc) as recency

    from recorded

),

latest_versions as (

    select * from ranked_versions

    where recency = 1

),

-- this run's version time, and whether it writes at all (not before the latest version)
run_time as (

    select
        case
            when max(recorded_at) is null
                or cast({{ as_of_date() }} as timestamp) > max(recorded_at)
                then cast({{ as_of_date() }} as timestamp)
            else {{ dbt.dateadd('second', 1, 'max(recorded_at)') }}
        end as recorded_at,
        coalesce({{ as_of_date() }} >= cast(max(recorded_at) as date), true) as is_recorded

    from recorded

),

new_versions as (

    select
        deals.deal_id,
        deals.contact_id,
        deals.owner_id,
        deals.stage_id,
        deals.amount,
        deals.close_date,
        deals.created_at,
        cast(run_time.recorded_at as timestamp) as recorded_at

    from deals

    cross join run_time

    left join latest_versions
        on deals.deal_id = latest_versions.deal_id

    where run_time.is_recorded
        and (
            latest_versions.deal_id is null
            or deals.stage_id is distinct from latest_versions.stage_id
            or deals.amount is distinct from latest_versions.amount
            or deals.close_date is distinct from latest_versions.close_date
        )

),

final as (

    {% if snapshot -%}
    select * from recorded

    union all

    {% endif -%}
    select * from new_versions

)

select * from final
