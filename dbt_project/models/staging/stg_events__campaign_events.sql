with

source as (

    select * from {{ source('raw', 'campaign_events') }}

),

renamed as (

    select
        -- identity (kept as delivered: it is compared exactly)
        cast(event_source as {{ string_type() }}) as event_source,
        cast(event_id as {{ string_type() }}) as event_id,

        -- event
        {{ normalize_code('event_type') }} as event_type,
        cast(event_time as {{ timestamptz_type() }}) as event_time,
        cast(campaign_id as bigint) as campaign_id,
        cast(contact_id as bigint) as contact_id,
        cast(lead_id as bigint) as lead_id,
        cast(deal_id as bigint) as deal_id,
        {{ to_decimal('revenue', 15, 2) }} as revenue,
        cast(business_id as bigint) as business_id,
        cast(branch_id as bigint) as branch_id,

        -- delivery
        cast(landing_date as date) as landing_date,
        cast(file_path as {{ string_type() }}) as file_path,
        cast(line_number as bigint) as line_number,
        cast(load_id as {{ string_type() }}) as load_id

    from source

),

final as (

    select * from renamed

)

select * from final
