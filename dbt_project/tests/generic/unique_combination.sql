{#- The combination of `combination` columns is unique. NULLs compare equal (GROUP BY
    semantics), so a grain with nullable keys such as (business_id, branch_id) is covered. -#}
{% test unique_combination(model, combination) %}

with grouped as (

    select
        {{ combination | join(', ') }},
        count(*) as row_count
    from {{ model }}
    group by {{ combination | join(', ') }}

)

select *
from grouped
where row_count > 1

{% endtest %}
