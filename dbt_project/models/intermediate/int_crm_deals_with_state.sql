with

deals as (

    select * from {{ ref('stg_erp__crm_deals') }}

),

stages as (

    select * from {{ ref('stg_erp__crm_pipeline_stages') }}

),

contacts as (

    select * from {{ ref('stg_erp__contacts') }}

),

deals_with_state as (

    select
        deals.deal_id,
        deals.contact_id,
        deals.lead_id,

        -- tenant keys are the contact's (NULL without one); soft-deleted contacts count here
        contacts.business_id,
        contacts.branch_id,

        -- a stage_id that matches no stage is treated like no stage at all
        deals.stage_id as source_stage_id,
        stages.stage_id,
        stages.stage_order,

        case
            when stages.is_won then 'won'
            when stages.is_lost then 'lost'
            else 'open'
        end as deal_state,

        deals.amount,
        deals.owner_id,
        deals.close_date,
        deals.created_at,
        deals.updated_at

    from deals

    left join stages
        on deals.stage_id = stages.stage_id

    left join contacts
        on deals.contact_id = contacts.contact_id

),

final as (

    select * from deals_with_state

)

select * from final
