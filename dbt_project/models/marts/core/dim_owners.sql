{#- One row per owner id a person may read about: every auth user, and every owner_id the
    leads and deals carry (an owner the auth service does not list still gets a row, with the
    fallback name). The dashboards and the digest show owner_name, never the id alone. -#}

with

users as (

    select * from {{ ref('stg_erp__auth_users') }}

),

deal_owners as (

    select distinct owner_id from {{ ref('stg_erp__crm_deals') }}
    where owner_id is not null

),

lead_owners as (

    select distinct owner_id from {{ ref('stg_erp__crm_leads') }}
    where owner_id is not null

),

owner_ids as (

    select user_id as owner_id from users
    union
    select owner_id from deal_owners
    union
    select owner_id from lead_owners

),

named as (

    select
        owner_ids.owner_id,
        users.username,
        nullif(
            trim(coalesce(users.first_name, '') || ' ' || coalesce(users.last_name, '')),
            ''
        ) as full_name

    from owner_ids

    left join users on owner_ids.owner_id = users.user_id

),

final as (

    select
        cast(owner_id as bigint) as owner_id,
        cast(coalesce(
            full_name, username,
            'Owner ' || cast(owner_id as {{ string_type() }})
        ) as {{ string_type() }}) as owner_name,
        cast(username as {{ string_type() }}) as username

    from named

)

select * from final
