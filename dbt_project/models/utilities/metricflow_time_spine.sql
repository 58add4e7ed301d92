{#- One row per day, 2020-01-01 to 2035-12-31: the time spine the dbt semantic layer
    (MetricFlow) joins metrics to. 2020-01-01 is the first landing-date partition. -#}
{{ config(materialized='table') }}

with

days as (

    select cast(spine.spine_day as date) as date_day

    from (select 1 as anchor) as one_row

    {{ join_date_series(
        "cast('2020-01-01' as date)", "cast('2035-12-31' as date)", 'spine', 'spine_day'
    ) }}

),

final as (

    select * from days

)

select * from final
