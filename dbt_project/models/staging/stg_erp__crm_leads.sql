with

source as (

    select * from {{ source('raw', 'crm_leads') }}

),

renamed as (

    select
        cast(id as bigint) as lead_id,
        cast(contact_id as bigint) as contact_id,
        cast(owner_id as bigint) as owner_id,
        coalesce({{ normalize_code('source') }}, 'unknown') as lead_source,
        {{ normalize_code('status') }} as lead_status,
        {{ to_decimal('value', 15, 2) }} as lead_value,
        cast(created_at as {{ timestamptz_type() }}) as created_at,
        cast(updated_at as {{ timestamptz_type() }}) as updated_at

    from source

),

final as (

    select * from renamed

)

select * from final
