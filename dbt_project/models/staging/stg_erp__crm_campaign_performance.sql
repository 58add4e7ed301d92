with

source as (

    select * from {{ source('raw', 'crm_campaign_performance') }}

),

renamed as (

    select
        cast(id as bigint) as campaign_performance_id,
        cast(campaign_id as bigint) as campaign_id,
        cast({{ adapter.quote('date') }} as date) as performance_date,
        cast(impressions as bigint) as impressions,
        cast(clicks as bigint) as clicks,
        cast(conversions as bigint) as conversions,
        {{ to_decimal('revenue', 15, 2) }} as revenue,
        cast(created_at as {{ timestamptz_type() }}) as created_at

    from source

),

final as (

    select * from renamed

)

select * from final
