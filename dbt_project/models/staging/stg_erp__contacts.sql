{#- A table, not a view like the other staging models: the keyed hashes below are computed
    once, in the pipeline's session that holds the key; a view would recompute them in every
    reader's session, which has no key. -#}
{{ config(materialized='table') }}

with

source as (

    select * from {{ source('raw', 'contacts') }}

),

renamed as (

    select
        -- ids
        cast(id as bigint) as contact_id,
        cast(contact_id as {{ string_type() }}) as contact_code,
        cast(user_id as bigint) as user_id,
        cast(business_id as bigint) as business_id,
        cast(branch_id as bigint) as branch_id,
        cast(customer_group_id as bigint) as customer_group_id,
        cast(created_by_id as bigint) as created_by_id,

        -- codes
        {{ normalize_code('contact_type') }} as contact_type,
        {{ normalize_code('account_type') }} as account_type,

        -- text
        cast(designation as {{ string_type() }}) as designation,
        cast(business_name as {{ string_type() }}) as business_name,
        cast(business_address as {{ string_type() }}) as business_address,

        -- personal data: keyed hashes (HMAC-SHA256) only, never the values
        {{ pii_hash('cast(tax_number as ' ~ string_type() ~ ')') }} as tax_number_hash,
        {{ pii_hash('cast(alternative_contact as '
                    ~ string_type() ~ ')') }} as alternative_contact_hash,
        {{ pii_hash('cast(phone as ' ~ string_type() ~ ')') }} as phone_hash,

        -- numbers and dates
        {{ to_decimal('credit_limit', 14, 2) }} as credit_limit,
        cast(added_on as date) as added_on,

        -- flags (the ERD default is false)
        coalesce(cast(is_deleted as boolean), false) as is_deleted

    from source

),

final as (

    select * from renamed

)

select * from final
