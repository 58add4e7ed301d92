with

source as (

    select * from {{ source('raw', 'crm_pipeline_stages') }}

),

renamed as (

    select
        cast(id as bigint) as stage_id,
        cast(name as {{ string_type() }}) as stage_name,
        cast({{ adapter.quote('order') }} as bigint) as stage_order,
        -- flags (the ERD default is false)
        coalesce(cast(is_won as boolean), false) as is_won,
        coalesce(cast(is_lost as boolean), false) as is_lost

    from source

),

final as (

    select * from renamed

)

select * from final
