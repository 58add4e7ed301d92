{#- HMAC-SHA256 of a personal-data expression (phone, tax number) as lower-case hex, computed
    from the definition H((K ^ opad) || H((K ^ ipad) || m)). The key pads come from the
    session (orchestration/pii.py sets them out of band), never from the SQL text, so no
    compiled model or dbt log holds the key. Blank or NULL input, or no key: NULL.
    Both implementations give the digest of Python's hmac.new(key, value, sha256). -#}
{% macro pii_hash(expression) -%}
    {{ return(adapter.dispatch('pii_hash', 'crm_analytics')(expression)) }}
{%- endmacro %}

{% macro default__pii_hash(expression) -%}
    sha256(
        cast(getvariable('crm_pii_opad') as blob)
        || unhex(sha256(
            cast(getvariable('crm_pii_ipad') as blob)
            || encode(nullif(trim({{ expression }}), ''))
        ))
    )
{%- endmacro %}

{% macro postgres__pii_hash(expression) -%}
    encode(sha256(
        decode(nullif(current_setting('crm.pii_opad', true), ''), 'hex')
        || sha256(
            decode(nullif(current_setting('crm.pii_ipad', true), ''), 'hex')
            || convert_to(nullif(trim({{ expression }}), ''), 'UTF8')
        )
    ), 'hex')
{%- endmacro %}

{#- Spark: the pads are the session settings crm.pii_ipad / crm.pii_opad (hex), which Spark puts
    in place of `${...}` when it runs the statement (spark.sql.variable.substitute), so the SQL
    text dbt compiles and logs holds only their names. An absent or empty setting gives NULL. -#}
{% macro spark__pii_hash(expression) -%}
    sha2(
        concat(
            unhex(nullif('${crm.pii_opad}', '')),
            unhex(sha2(
                concat(
                    unhex(nullif('${crm.pii_ipad}', '')),
                    encode(nullif(trim({{ expression }}), ''), 'UTF-8')
                ),
                256
            ))
        ),
        256
    )
{%- endmacro %}
