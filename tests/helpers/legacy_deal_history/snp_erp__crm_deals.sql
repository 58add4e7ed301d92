{#- Deal history: one row per version of a deal's stage, amount and close date, recorded by
    every `dbt build` (the ERP keeps only the current state).

    Strategy `check` on (stage_id, amount, close_date): the ERP's `updated_at` also moves for
    edits we do not track, and may be NULL. A version is valid from the run's AS-OF DATE, not
    the wall-clock time of the run (`updated_at` = observed_at), so a run for date D records
    the state "as of D" even when it runs later (the schedule runs after midnight for
    yesterday; a backfill runs for past dates).

    observed_at is midnight of the as-of date. A rerun of the same date that sees a change
    records it one second after the latest recorded version (still on day D; the earlier
    version of that day is superseded), which keeps version ids (deal, observed_at) unique.
    A run whose as-of date is before the latest recorded version records nothing: history is
    only written forward. -#}
{% snapshot snp_erp__crm_deals %}

{{ config(
    schema='snapshots',
    unique_key='deal_id',
    strategy='check',
    check_cols=['stage_id', 'amount', 'close_date'],
    updated_at='observed_at',
) }}

{%- set existing = load_relation(this) -%}

with

deals as (

    select * from {{ ref('stg_erp__crm_deals') }}

),

run_time as (

    select
            {%- if existing is none %}
        cast({{ as_of_date() }} as timestamp) as observed_at,
        true as is_recorded
        {%- else %}
        case
            when max(dbt_valid_from) is null
                or cast({{ as_of_date() }} as timestamp) > max(dbt_valid_from)
                then cast({{ as_of_date() }} as timestamp)
            else max(dbt_valid_from) + interval '1 second'
        end as observed_at,
        coalesce({{ as_of_date() }} >= cast(max(dbt_valid_from) as date), true) as is_recorded
        from {{ existing }}
        {%- endif %}

),

final as (

    select
        deals.deal_id,
        deals.contact_id,
        deals.owner_id,
        deals.stage_id,
        deals.amount,
        deals.close_date,
        deals.created_at,
        run_time.observed_at

    from deals

    cross join run_time

    where run_time.is_recorded

)

select * from final

{% endsnapshot %}
