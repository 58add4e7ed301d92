{#- The open pipeline as it stood at the end of every day since history began, up to the
    as-of date: one row per (date, tenant pair, stage) with at least one open deal. A day
    with no row for a stage had no open deal in it. -#}

with

versions as (

    select * from {{ ref('int_crm_deal_versions') }}

),

stages as (

    select * from {{ ref('stg_erp__crm_pipeline_stages') }}

),

contacts as (

    select * from {{ ref('stg_erp__contacts') }}

),

history_days as (

    select cast(days.history_day as date) as pipeline_date

    from (select min(recorded_from) as history_started_on from versions) as history_start

    {{ join_date_series('history_start.history_started_on', as_of_date(), 'days', 'history_day') }}

),

open_versions_by_day as (

    select
        history_days.pipeline_date,
        contacts.business_id,
        contacts.branch_id,
        versions.stage_id,
        versions.deal_id,
        versions.amount

    from history_days

    inner join versions
        on history_days.pipeline_date >= versions.valid_from
        and (versions.valid_to is null or history_days.pipeline_date < versions.valid_to)

    left join contacts
        on versions.contact_id = contacts.contact_id

    where versions.deal_state = 'open'

),

final as (

    select
        open_versions_by_day.pipeline_date,
        open_versions_by_day.business_id,
        open_versions_by_day.branch_id,
        open_versions_by_day.stage_id,
        stages.stage_name,
        stages.stage_order,
        cast(count(*) as bigint) as open_deals,
        cast(coalesce(sum(open_versions_by_day.amount), 0) as decimal(18, 2)) as open_amount

    from open_versions_by_day

    left join stages
        on open_versions_by_day.stage_id = stages.stage_id

    group by
        open_versions_by_day.pipeline_date,
        open_versions_by_day.business_id,
        open_versions_by_day.branch_id,
        open_versions_by_day.stage_id,
        stages.stage_name,
        stages.stage_order

)

select * from final
