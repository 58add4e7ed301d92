{#- Exact decimal division, rounded half away from zero to `scale` decimals, as
    decimal(precision, scale). `denominator` must be a positive integer expression.

    DuckDB turns decimal / decimal into a DOUBLE (spend = budget / flight days would then be
    off in the last digits, and differ from PostgreSQL), so the quotient is computed on
    integers instead: round(n / d) = sign(n) * ((2 * |n| * 10^scale + d) div (2 * d)).
    Only integer division differs between the warehouses (`integer_divide`). -#}
{% macro divide_decimal(numerator, denominator, scale=6, precision=19) -%}
    {%- set units = '1' ~ ('0' * scale) -%}
    {%- set unit = '0.' ~ ('0' * (scale - 1)) ~ '1' if scale > 0 else '1' -%}
    {%- set scaled_abs = 'abs(cast(cast(' ~ numerator ~ ' as decimal(38, ' ~ scale ~ ')) * '
        ~ units ~ ' as decimal(38, 0)))' -%}
    cast(
        {{ decimal_sign(numerator) }}
        * cast(
            {{ integer_divide(scaled_abs ~ ' * 2 + (' ~ denominator ~ ')', '2 * (' ~ denominator ~ ')') }}
        as decimal(24, 0))
        * {{ unit }}
    as decimal({{ precision }}, {{ scale }}))
{%- endmacro %}

{#- Integer division of two non-negative integer expressions (truncating). -#}
{% macro integer_divide(numerator, denominator) -%}
    {{ return(adapter.dispatch('integer_divide', 'crm_analytics')(numerator, denominator)) }}
{%- endmacro %}

{#- DuckDB: `/` is floating-point division; `//` divides integers. -#}
{% macro default__integer_divide(numerator, denominator) -%}
    (cast({{ numerator }} as hugeint) // cast({{ denominator }} as hugeint))
{%- endmacro %}

{#- PostgreSQL has no `//`; div() divides numerics exactly, truncating. -#}
{% macro postgres__integer_divide(numerator, denominator) -%}
    div(cast({{ numerator }} as numeric), cast({{ denominator }} as numeric))
{%- endmacro %}

{#- Spark's `div` divides exactly and truncates, giving a bigint (enough for amounts to 9.2e12
    at 6 decimals). -#}
{% macro spark__integer_divide(numerator, denominator) -%}
    (cast({{ numerator }} as decimal(38, 0)) div cast({{ denominator }} as decimal(38, 0)))
{%- endmacro %}

{#- The sign of a number as -1, 0 or 1 that multiplies a decimal exactly. -#}
{% macro decimal_sign(expression) -%}
    {{ return(adapter.dispatch('decimal_sign', 'crm_analytics')(expression)) }}
{%- endmacro %}

{% macro default__decimal_sign(expression) -%}
    sign({{ expression }})
{%- endmacro %}

{#- Spark's sign() is a double, which would turn the product into a double. -#}
{% macro spark__decimal_sign(expression) -%}
    cast(sign({{ expression }}) as int)
{%- endmacro %}

{#- Money per unit (an average amount per deal, per conversion, per contact), exact to the
    cent: NULL when the count is 0 or NULL (like a rate), else divide_decimal. -#}
{#- The outer cast keeps the type decimal(18,2) on PostgreSQL, where a CASE drops it. -#}
{% macro money_per(amount, count) -%}
    cast(
        case
            when {{ count }} > 0
                then {{ divide_decimal(amount, count, scale=2, precision=18) }}
        end
    as decimal(18, 2))
{%- endmacro %}
