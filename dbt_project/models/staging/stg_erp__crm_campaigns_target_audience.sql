with

source as (

    select * from {{ source('raw', 'crm_campaigns_target_audience') }}

),

renamed as (

    select
        cast(id as bigint) as campaign_target_audience_id,
        cast(campaign_id as bigint) as campaign_id,
        cast(contact_id as bigint) as contact_id

    from source

),

final as (

    select * from renamed

)

select * from final
