{#- One row per (business_id, branch_id) with deals: the pair totals of v_crm_pipeline_summary,
    which repeat on each of the pair's stage rows there, taken once. Pages sum these rows
    over the pairs a viewer selects and recompute the rates from the sums. -#}

with

pipeline_summary as (

    select * from {{ ref('v_crm_pipeline_summary') }}

),

pair_totals as (

    select distinct
        business_id,
        branch_id,
        total_deals,
        open_deals,
        open_amount,
        won_deals,
        won_amount,
        lost_deals,
        lost_amount,
        win_rate,
        value_win_rate

    from pipeline_summary

),

final as (

    select * from pair_totals

)

select * from final
