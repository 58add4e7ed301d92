with

source as (

    select * from {{ source('raw', 'branches') }}

),

renamed as (

    select
        cast(id as bigint) as branch_id,
        cast(business_id as bigint) as business_id,
        cast(name as {{ string_type() }}) as branch_name

    from source

),

final as (

    select * from renamed

)

select * from final
