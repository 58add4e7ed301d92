with

source as (

    select * from {{ source('raw', 'crm_campaigns') }}

),

renamed as (

    select
        -- ids
        cast(id as bigint) as campaign_id,
        cast(seller_id as bigint) as seller_contact_id,
        cast(branch_id as bigint) as branch_id,
        cast(created_by_id as bigint) as created_by_id,

        -- codes
        {{ normalize_code('campaign_type') }} as campaign_type,
        {{ normalize_code('status') }} as campaign_status,

        -- text
        cast(name as {{ string_type() }}) as campaign_name,
        cast(title as {{ string_type() }}) as campaign_title,
        cast(description as {{ string_type() }}) as campaign_description,
        cast(image as {{ string_type() }}) as image,
        cast(badge as {{ string_type() }}) as badge,
        cast(landing_page_url as {{ string_type() }}) as landing_page_url,
        cast(cta_text as {{ string_type() }}) as cta_text,

        -- numbers
        cast(priority as bigint) as priority,
        cast(impressions as bigint) as impressions,
        cast(clicks as bigint) as clicks,
        cast(conversions as bigint) as conversions,
        {{ to_decimal('revenue_generated', 15, 2) }} as revenue_generated,
        {{ to_decimal('budget', 15, 2) }} as budget,
        cast(max_impressions as bigint) as max_impressions,
        cast(max_clicks as bigint) as max_clicks,

        -- flags
        cast(is_active as boolean) as is_active,
        cast(is_default as boolean) as is_default,

        -- timestamps
        cast(start_date as {{ timestamptz_type() }}) as starts_at,
        cast(end_date as {{ timestamptz_type() }}) as ends_at,
        cast(created_at as {{ timestamptz_type() }}) as created_at,
        cast(updated_at as {{ timestamptz_type() }}) as updated_at

    from source

),

final as (

    select * from renamed

)

select * from final
