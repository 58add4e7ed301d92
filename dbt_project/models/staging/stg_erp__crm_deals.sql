with

source as (

    select * from {{ source('raw', 'crm_deals') }}

),

renamed as (

    select
        cast(id as bigint) as deal_id,
        cast(contact_id as bigint) as contact_id,
        cast(lead_id as bigint) as lead_id,
        cast(stage_id as bigint) as stage_id,
        cast(owner_id as bigint) as owner_id,
        cast(title as {{ string_type() }}) as deal_title,
        {{ to_decimal('amount', 15, 2) }} as amount,
        cast(close_date as date) as close_date,
        cast(created_at as {{ timestamptz_type() }}) as created_at,
        cast(updated_at as {{ timestamptz_type() }}) as updated_at

    from source

),

final as (

    select * from renamed

)

select * from final
