with

source as (

    select * from {{ source('raw', 'customer_groups') }}

),

renamed as (

    select
        cast(id as bigint) as customer_group_id,
        cast(group_name as {{ string_type() }}) as customer_group_name,
        {{ normalize_code('dicount_calculation') }} as discount_calculation,
        {{ to_decimal('amount', 14, 2) }} as discount_amount

    from source

),

final as (

    select * from renamed

)

select * from final
