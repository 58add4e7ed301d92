{#- One row per contact (soft-deleted ones too, so old deals still read well): the label a
    person reads for it, the contact's business name, or its code when it has none. -#}

with

contacts as (

    select * from {{ ref('stg_erp__contacts') }}

),

final as (

    select
        cast(contact_id as bigint) as contact_pk,
        cast(contact_code as {{ string_type() }}) as contact_code,
        cast(coalesce(
            nullif(trim(business_name), ''), contact_code,
            'Contact ' || cast(contact_id as {{ string_type() }})
        ) as {{ string_type() }}) as contact_label,
        cast(business_id as bigint) as business_id,
        cast(branch_id as bigint) as branch_id

    from contacts

)

select * from final
