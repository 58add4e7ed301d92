with

source as (

    select * from {{ source('raw', 'contact_accounts') }}

),

renamed as (

    select
        cast(id as bigint) as contact_account_id,
        cast(contact_id as bigint) as contact_id,
        {{ to_decimal('account_balance', 14, 2) }} as account_balance,
        {{ to_decimal('advance_balance', 14, 2) }} as advance_balance,
        {{ to_decimal('total_sale_due', 14, 2) }} as total_sale_due,
        {{ to_decimal('total_sale_return_due', 14, 2) }} as total_sale_return_due

    from source

),

final as (

    select * from renamed

)

select * from final
