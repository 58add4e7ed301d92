{#- Campaign activity from events per (campaign, date), maintained incrementally: a run
    re-aggregates exactly the (campaign, date) pairs touched by files loaded since the last
    build — at any lateness — and leaves every other pair as it was. A replaced (changed)
    event file or a new reporting zone rebuilds everything, since the rows they affected are
    no longer known. An empty previous state (no rows yet: the first runs had no campaign
    events) means everything is new: it rebuilds everything too. -#}
{#- Spark has no delete+insert on Parquet: there the model is partitioned by event_date and a
    run overwrites the dates it touched (insert_overwrite), recomputing every campaign of those
    dates, so the untouched campaigns of a touched date are rewritten unchanged. -#}
{{ config(
    materialized='incremental',
    unique_key=['campaign_id', 'event_date'],
    incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'delete+insert'),
    partition_by=(['event_date'] if target.type == 'spark' else none),
) }}

{%- set rebuild_all = not is_incremental() -%}
{%- if is_incremental() and execute -%}
    {%- set check_sql -%}
        select count(*) from {{ this }} where reporting_tz <> '{{ reporting_tz() }}'
        union all
        select case when exists (select 1 from {{ this }}) then 0 else 1 end
        union all
        select count(*) from {{ source('raw', 'event_files') }}
        where replaced
            and loaded_at > (select max(built_from_loaded_at) from {{ this }})
    {%- endset -%}
    {%- set rebuild_all = (run_query(check_sql).columns[0].values() | sum) > 0 -%}
{%- endif -%}
{#- the pairs a run recomputes (on Spark, whole dates: see the config) -#}
{%- set pairs = 'touched_date_pairs' if target.type == 'spark' and not rebuild_all
    else 'touched_pairs' -%}

with

deliveries as (

    select
        event_source,
        event_id,
        event_type,
        campaign_id,
        revenue,
        landing_date,
        file_path,
        line_number,
        load_id,
        event_time,
        {{ to_reporting_date('event_time') }} as event_date

    from {{ ref('stg_events__campaign_events') }}

),

campaign_deliveries as (

    select * from deliveries
    where event_type in ('{{ campaign_event_types() | join("', '") }}')  -- noqa: LT05
        and campaign_id is not null

),

{% if rebuild_all %}

touched_pairs as (

    select distinct
        campaign_id,
        event_date
    from campaign_deliveries
    {% if is_incremental() %}
    union
    select campaign_id, event_date from {{ this }}
    {% endif %}

),

candidates as (

    select * from deliveries

),

{% else %}

new_files as (

    select file_path from {{ source('raw', 'event_files') }}
    -- no build time yet (NULL) counts every file as new, never none
    where loaded_at > coalesce((select max(built_from_loaded_at) from {{ this }}),
                               cast('1900-01-01' as {{ dbt.type_timestamp() }}))

),

new_identities as (

    select distinct deliveries.event_source, deliveries.event_id
    from deliveries
    inner join new_files on deliveries.file_path = new_files.file_path

),

-- every pair that any copy of a newly delivered event points at: a late, earlier-landed copy
-- can move an event from one pair to another
touched_pairs as (

    select distinct campaign_deliveries.campaign_id, campaign_deliveries.event_date
    from campaign_deliveries
    inner join new_identities
        on campaign_deliveries.event_source = new_identities.event_source
        and campaign_deliveries.event_id = new_identities.event_id

),
{%- if target.type == 'spark' %}
-- a date's partition is replaced whole: every pair of a touched date, the kept ones included
touched_date_pairs as (

    select distinct campaign_deliveries.campaign_id, campaign_deliveries.event_date
    from campaign_deliveries
    where campaign_deliveries.event_date in (select event_date from touched_pairs)
    union
    select campaign_id, event_date from {{ this }}
    where event_date in (select event_date from touched_pairs)

),
{% endif %}

-- every event with a copy in a touched pair, with all its copies (its winner may be anywhere)
candidate_identities as (

    select distinct campaign_deliveries.event_source, campaign_deliveries.event_id
    from campaign_deliveries
    inner join {{ pairs }}
        on campaign_deliveries.campaign_id = {{ pairs }}.campaign_id
        and campaign_deliveries.event_date = {{ pairs }}.event_date

),

candidates as (

    select deliveries.*
    from deliveries
    inner join candidate_identities
        on deliveries.event_source = candidate_identities.event_source
        and deliveries.event_id = candidate_identities.event_id

),

{% endif %}

winners as (

    select *
    from (
        select
            *,
            row_number() over (
                partition by event_source, event_id order by {{ first_landed_order() }}
            ) as delivery_rank
        from candidates
    ) as ranked
    where delivery_rank = 1

),

aggregated as (

    select
        winners.campaign_id,
        winners.event_date,
        sum(case when winners.event_type = 'erp.campaign.impression' then 1 else 0 end)
            as impressions,
        sum(case when winners.event_type = 'erp.campaign.click' then 1 else 0 end) as clicks,
        sum(case when winners.event_type = 'erp.campaign.conversion' then 1 else 0 end)
            as conversions,
        sum(case when winners.event_type = 'erp.campaign.conversion' then winners.revenue end)
            as revenue,
        sum(case when winners.event_type = 'erp.campaign.sent' then 1 else 0 end) as sends

    from winners

    inner join {{ pairs }}
        on winners.campaign_id = {{ pairs }}.campaign_id
        and winners.event_date = {{ pairs }}.event_date

    where winners.event_type in ('{{ campaign_event_types() | join("', '") }}')  -- noqa: LT05

    group by winners.campaign_id, winners.event_date

),

final as (

    select
        {{ pairs }}.campaign_id,
        {{ pairs }}.event_date,
        aggregated.campaign_id is not null as has_events,
        cast(coalesce(aggregated.impressions, 0) as bigint) as impressions,
        cast(coalesce(aggregated.clicks, 0) as bigint) as clicks,
        cast(coalesce(aggregated.conversions, 0) as bigint) as conversions,
        cast(coalesce(aggregated.revenue, 0) as decimal(18, 2)) as revenue,
        cast(coalesce(aggregated.sends, 0) as bigint) as sends,
        (
            select max(event_files.loaded_at)
            from {{ source('raw', 'event_files') }} as event_files
        ) as built_from_loaded_at,
        cast('{{ reporting_tz() }}' as {{ string_type() }}) as reporting_tz

    from {{ pairs }}

    left join aggregated
        on {{ pairs }}.campaign_id = aggregated.campaign_id
        and {{ pairs }}.event_date = aggregated.event_date

)

select * from final
