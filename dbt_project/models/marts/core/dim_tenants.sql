{#- One row per tenant pair a person may read about: each branch with its business, and each
    business on its own (branch_id NULL, for rows without a branch). Names fall back to
    "Business <id>" / "Branch <id>" when the ERP has no name (or no such table). -#}

with

businesses as (

    select * from {{ ref('stg_erp__businesses') }}

),

branches as (

    select * from {{ ref('stg_erp__branches') }}

),

pairs as (

    select
        business_id,
        branch_id,
        branch_name
    from branches
    union all
    select
        business_id,
        cast(null as bigint) as branch_id,
        cast(null as {{ string_type() }}) as branch_name
    from businesses

),

final as (

    select
        cast(pairs.business_id as bigint) as business_id,
        cast(case
            when pairs.business_id is null then null
            else coalesce(
                    nullif(trim(businesses.business_name), ''),
                    'Business ' || cast(pairs.business_id as {{ string_type() }})
                )
        end as {{ string_type() }}) as business_name,
        cast(pairs.branch_id as bigint) as branch_id,
        cast(case
            when pairs.branch_id is null then null
            else coalesce(
                    nullif(trim(pairs.branch_name), ''),
                    'Branch ' || cast(pairs.branch_id as {{ string_type() }})
                )
        end as {{ string_type() }}) as branch_name

    from pairs

    left join businesses on pairs.business_id = businesses.business_id

)

select * from final
