-- Every mart's tenant keys are its contact's: row by row where a mart row has one contact
-- (contact summary) or one deal (stage history: the deal's contact in its latest recorded
-- version), and for the marts that aggregate over contacts, every (business_id, branch_id)
-- pair is the pair of some contact, or (NULL, NULL) for rows without a known contact.
-- Campaign marts follow the campaign's rule: its own branch, its branch's business or else
-- its seller's.
-- Returns each offending row, named by mart.

with

contacts as (

    select * from {{ ref('stg_erp__contacts') }}

),

contact_pairs as (

    select distinct
        business_id,
        branch_id
    from contacts
    union
    select
        cast(null as bigint) as business_id,
        cast(null as bigint) as branch_id

),

aggregated_pairs as (

    {%- set aggregated_marts = [
        'v_crm_pipeline_summary', 'v_crm_lead_conversion', 'owner_performance',
        'lead_source_effectiveness', 'customer_group_summary', 'fct_open_pipeline_daily',
        'fct_stage_conversion',
    ] %}
    {%- for mart in aggregated_marts %}
    select distinct
        '{{ mart }}' as mart,
        business_id,
        branch_id
    from {{ ref(mart) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

unknown_pairs as (

    select
        aggregated_pairs.mart,
        aggregated_pairs.business_id,
        aggregated_pairs.branch_id

    from aggregated_pairs

    left join contact_pairs
        on aggregated_pairs.business_id is not distinct from contact_pairs.business_id
        and aggregated_pairs.branch_id is not distinct from contact_pairs.branch_id

    where contact_pairs.business_id is null
        and contact_pairs.branch_id is null
        and not (aggregated_pairs.business_id is null and aggregated_pairs.branch_id is null)

),

ranked_deal_versions as (

    select
        deal_id,
        contact_id,
        row_number() over (partition by deal_id order by recorded_at desc) as recency

    from {{ ref('crm_deal_versions') }}

),

latest_deal_versions as (

    select * from ranked_deal_versions

    where recency = 1

),

contact_summary_mismatches as (

    select
        'v_crm_contact_summary' as mart,
        contact_summary.business_id,
        contact_summary.branch_id

    from {{ ref('v_crm_contact_summary') }} as contact_summary

    inner join contacts
        on contact_summary.contact_pk = contacts.contact_id

    where contact_summary.business_id is distinct from contacts.business_id
        or contact_summary.branch_id is distinct from contacts.branch_id

),

history_mismatches as (

    select
        'fct_deal_stage_history' as mart,
        history.business_id,
        history.branch_id

    from {{ ref('fct_deal_stage_history') }} as history

    inner join latest_deal_versions as deals
        on history.deal_id = deals.deal_id

    left join contacts
        on deals.contact_id = contacts.contact_id

    where history.is_current
        and (
            history.business_id is distinct from contacts.business_id
            or history.branch_id is distinct from contacts.branch_id
        )

),

campaign_keys as (

    select
        campaigns.campaign_id,
        campaigns.branch_id,
        coalesce(branches.business_id, sellers.business_id) as business_id

    from {{ ref('stg_erp__crm_campaigns') }} as campaigns

    left join {{ ref('stg_erp__branches') }} as branches
        on campaigns.branch_id = branches.branch_id

    left join contacts as sellers
        on campaigns.seller_contact_id = sellers.contact_id

),

campaign_mismatches as (

    {%- for mart in ['v_crm_campaign_performance', 'campaign_lifetime'] %}
    select distinct
        '{{ mart }}' as mart,
        campaign_mart.business_id,
        campaign_mart.branch_id

    from {{ ref(mart) }} as campaign_mart

    left join campaign_keys
        on campaign_mart.campaign_id = campaign_keys.campaign_id

    where campaign_mart.business_id is distinct from campaign_keys.business_id
        or campaign_mart.branch_id is distinct from campaign_keys.branch_id
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

)

select * from unknown_pairs
union all
select * from contact_summary_mismatches
union all
select * from history_mismatches
union all
select * from campaign_mismatches
