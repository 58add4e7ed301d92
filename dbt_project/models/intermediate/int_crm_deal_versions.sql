{#- Each recorded version of a deal as a range of reporting dates [valid_from, valid_to),
    from the deal history crm_deal_versions (a version ends where the deal's next one
    starts), with the won date taken from `erp.opportunity.won` events where they give one.
    This is the single place where history gets its dates: the stage history, the daily
    pipeline and the close-date slippage read it. A table, not a view: as a view each of them,
    and each of its data tests, recomputed it (35–59 s each at `large` on PostgreSQL). -#}

{{ config(materialized='table') }}

with

recorded_versions as (

    select
        *,
        lead(recorded_at) over (partition by deal_id order by recorded_at) as superseded_at

    from {{ ref('crm_deal_versions') }}

),

stages as (

    select * from {{ ref('stg_erp__crm_pipeline_stages') }}

),

won_dates as (

    select * from {{ ref('int_crm_deal_won_dates') }}

),

-- only what the runs up to the as-of date recorded (a run for an earlier date shows history
-- as it was known then); a version superseded on its own day (a same-date rerun saw a
-- change) never held at the end of any day: it is dropped
day_versions as (

    select
        deal_id,
        contact_id,
        owner_id,
        stage_id as source_stage_id,
        amount,
        close_date,
        created_at,
        cast(recorded_at as date) as recorded_from,
        case
            when cast(superseded_at as date) <= {{ as_of_date() }}
                then cast(superseded_at as date)
        end as recorded_to

    from recorded_versions

    where cast(recorded_at as date) <= {{ as_of_date() }}
        and (
            superseded_at is null
            or cast(superseded_at as date) > cast(recorded_at as date)
        )

),

versions_with_state as (

    select
        day_versions.*,
        -- a stage_id that matches no stage is treated like no stage at all
        stages.stage_id,
        stages.stage_order,
        case
            when stages.is_won then 'won'
            when stages.is_lost then 'lost'
            else 'open'
        end as deal_state,
        lag(
            case
                when stages.is_won then 'won'
                when stages.is_lost then 'lost'
                else 'open'
            end
        ) over (partition by day_versions.deal_id order by day_versions.recorded_from)
            as previous_state,
        lag(day_versions.recorded_from) over (
            partition by day_versions.deal_id order by day_versions.recorded_from
        ) as previous_recorded_from

    from day_versions

    left join stages
        on day_versions.source_stage_id = stages.stage_id

),

-- a version that moves the deal into a won stage starts on the won event's date when the
-- event falls after the previous version began and no later than the run that saw the win
versions_with_won_date as (

    select
        versions_with_state.*,
        case
            when versions_with_state.deal_state = 'won'
                and (
                    versions_with_state.previous_state is null
                    or versions_with_state.previous_state <> 'won'
                )
                and won_dates.won_event_date <= versions_with_state.recorded_from
                and (
                    versions_with_state.previous_recorded_from is null
                    or won_dates.won_event_date > versions_with_state.previous_recorded_from
                )
                then won_dates.won_event_date
            else versions_with_state.recorded_from
        end as valid_from,
        won_dates.won_event_date

    from versions_with_state

    left join won_dates
        on versions_with_state.deal_id = won_dates.deal_id

),

final as (

    select
        deal_id,
        row_number() over (partition by deal_id order by valid_from) as version_number,
        contact_id,
        owner_id,
        source_stage_id,
        stage_id,
        stage_order,
        deal_state,
        amount,
        close_date,
        created_at,
        won_event_date,
        valid_from,
        -- the next version's start (moved back too when that version is a win)
        coalesce(
            lead(valid_from) over (partition by deal_id order by valid_from),
            recorded_to
        ) as valid_to,
        recorded_from

    from versions_with_won_date

)

select * from final
