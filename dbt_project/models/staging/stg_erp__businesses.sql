with

source as (

    select * from {{ source('raw', 'businesses') }}

),

renamed as (

    select
        cast(id as bigint) as business_id,
        cast(name as {{ string_type() }}) as business_name

    from source

),

final as (

    select * from renamed

)

select * from final
