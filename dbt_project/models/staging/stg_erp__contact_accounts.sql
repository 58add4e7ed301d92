with

source as (

    select * from {{ source('raw', 'contact_accounts') }}

),

renamed as (

    select
        cast(id as bigint) as contact_account_id,
        cast(contact_id as bigint) as contact_id,
        cast(account_balance as decimal(14, 2)) as account_balance,
        cast(advance_balance as decimal(14, 2)) as advance_balance,
        cast(total_sale_due as decimal(14, 2)) as total_sale_due,
        cast(total_sale_return_due as decimal(14, 2)) as total_sale_return_due

    from source

),

final as (

    select * from renamed

)

select * from final
