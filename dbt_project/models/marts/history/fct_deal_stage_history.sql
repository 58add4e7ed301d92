{#- One row per stage visit of a deal: consecutive versions in the same stage (an amount or
    close-date change) are one visit. -#}

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

-- when history began: the first run's as-of date
history_start as (

    select min(recorded_from) as history_started_on from versions

),

-- gaps and islands: versions of a deal in the same stage, without another stage between
versions_in_visits as (

    select
        *,
        row_number() over (partition by deal_id order by valid_from)
        - row_number() over (
            partition by deal_id, coalesce(stage_id, -1) order by valid_from
        ) as visit_group

    from versions

),

visits as (

    select
        deal_id,
        stage_id,
        visit_group,
        min(valid_from) as entered_on,
        -- NULL while the deal is still in the stage
        case when count(*) = count(valid_to) then max(valid_to) end as exited_on,
        min(version_number) as first_version_number,
        max(version_number) as last_version_number

    from versions_in_visits

    group by deal_id, stage_id, visit_group

),

numbered_visits as (

    select
        visits.*,
        row_number() over (partition by visits.deal_id order by visits.entered_on)
            as visit_number,
        lead(visits.stage_id) over (partition by visits.deal_id order by visits.entered_on)
            as next_stage_id

    from visits

),

final as (

    select
        numbered_visits.deal_id,
        cast(numbered_visits.visit_number as bigint) as visit_number,
        contacts.business_id,
        contacts.branch_id,
        last_version.owner_id,
        numbered_visits.stage_id,
        stages.stage_name,
        stages.stage_order,
        last_version.deal_state,
        cast(last_version.amount as decimal(18, 2)) as amount,
        numbered_visits.entered_on,
        numbered_visits.exited_on,
        cast(
            {{ dbt.datediff(
                'numbered_visits.entered_on',
                'coalesce(numbered_visits.exited_on, ' ~ as_of_date() ~ ')',
                'day'
            ) }}
            as bigint
        ) as days_in_stage,
        numbered_visits.exited_on is null as is_current,
        numbered_visits.next_stage_id,
        -- the deal was already in this stage when history began: entered_on is when it was
        -- first seen, not when it entered
        (
            numbered_visits.visit_number = 1
            and first_version.recorded_from = history_start.history_started_on
            and numbered_visits.entered_on = first_version.recorded_from)
            as entered_before_history

    from numbered_visits

    inner join versions as first_version
        on numbered_visits.deal_id = first_version.deal_id
        and numbered_visits.first_version_number = first_version.version_number

    inner join versions as last_version
        on numbered_visits.deal_id = last_version.deal_id
        and numbered_visits.last_version_number = last_version.version_number

    cross join history_start

    left join stages
        on numbered_visits.stage_id = stages.stage_id

    left join contacts
        on last_version.contact_id = contacts.contact_id

)

select * from final
