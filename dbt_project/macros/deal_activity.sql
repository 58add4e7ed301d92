{#- Deals created, won and lost per (business_id, branch_id, owner_id, period), from
    int_crm_deal_outcomes (docs/contract.md section 6): a deal counts as new in the period of
    its created date, as won in the period of its won date and as lost in that of its lost
    date. `period` is a dbt.date_trunc date part ('month', 'quarter'). Shared by
    sales_monthly and owner_leaderboard, so their month rows cannot disagree.

    Yields one row per group and period with at least one deal created, won or lost, typed as
    the marts publish them: business_id, branch_id, owner_id, period_start, new_deals,
    new_pipeline, won_deals, won_amount, lost_deals, lost_amount (sums, 0 when none), win_rate
    and cycle_days_sum. -#}
{% macro deal_activity_by_period(outcomes, period) -%}
    select
        business_id,
        branch_id,
        owner_id,
        period_start,
        cast(new_deals as bigint) as new_deals,
        cast(new_pipeline as decimal(18, 2)) as new_pipeline,
        cast(won_deals as bigint) as won_deals,
        cast(won_amount as decimal(18, 2)) as won_amount,
        cast(lost_deals as bigint) as lost_deals,
        cast(lost_amount as decimal(18, 2)) as lost_amount,
        {{ safe_ratio('won_deals', 'won_deals + lost_deals') }} as win_rate,
        cast(cycle_days_sum as bigint) as cycle_days_sum

    from (
        select
            business_id,
            branch_id,
            owner_id,
            cast({{ dbt.date_trunc(period, 'activity_date') }} as date) as period_start,
            sum(case when activity = 'new' then 1 else 0 end) as new_deals,
            coalesce(sum(case when activity = 'new' then amount end), 0) as new_pipeline,
            sum(case when activity = 'won' then 1 else 0 end) as won_deals,
            coalesce(sum(case when activity = 'won' then amount end), 0) as won_amount,
            sum(case when activity = 'lost' then 1 else 0 end) as lost_deals,
            coalesce(sum(case when activity = 'lost' then amount end), 0) as lost_amount,
            coalesce(sum(case when activity = 'won' then cycle_days end), 0) as cycle_days_sum

        from (
            {%- for activity, date_column in [('new', 'created_date'), ('won', 'won_date'),
                                              ('lost', 'lost_date')] %}
            select
                business_id,
                branch_id,
                owner_id,
                '{{ activity }}' as activity,
                {{ date_column }} as activity_date,
                amount,
                cycle_days
            from {{ outcomes }}
            where {{ date_column }} is not null
            {% if not loop.last %}union all{% endif %}
            {%- endfor %}
        ) as deal_activity

        group by
            business_id,
            branch_id,
            owner_id,
            cast({{ dbt.date_trunc(period, 'activity_date') }} as date)
    ) as period_activity
{%- endmacro %}
