{#- A table, not a view: the e-mail's keyed hash is computed once, in the pipeline's session
    that holds the key (as in stg_erp__contacts). Names and usernames are kept: they are what
    the dashboards show for an owner. -#}
{{ config(materialized='table') }}

with

source as (

    select * from {{ source('raw', 'auth_users') }}

),

renamed as (

    select
        -- ids
        cast(id as bigint) as user_id,

        -- text (blank means unknown)
        nullif(trim(cast(username as {{ string_type() }})), '') as username,
        nullif(trim(cast(first_name as {{ string_type() }})), '') as first_name,
        nullif(trim(cast(last_name as {{ string_type() }})), '') as last_name,

        -- personal data: a keyed hash (HMAC-SHA256) of the lower-cased address, never the value
        {{ pii_hash('lower(cast(email as ' ~ string_type() ~ '))') }} as email_hash

    from source

),

final as (

    select * from renamed

)

select * from final
