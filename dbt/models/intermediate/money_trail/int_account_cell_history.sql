{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    unique_key=['account', 'h3_cell'],
    indexes=[{'columns': ['account', 'valid_from']}, {'columns': ['account', 'h3_cell']}, {'columns': ['built_at']}],
) }}
-- How many of an account's withdrawals in a cell had arrived, as of each extract date:
-- one row per (account, h3_cell) and extract that brought new ones, valid from that
-- extract date until the next one. Lets complaint pressure weigh the cells an account
-- uses by what was known on the day the money arrived. Grain: (account, h3_cell, valid_from).
-- Incremental: only the (account, cell) pairs with withdrawals in the newly loaded
-- extracts are recomputed (their whole history, which is short).
with

{% if is_incremental() %}
touched as (
    select distinct account, h3_cell
    from {{ ref('int_withdrawals_located') }}
    where h3_cell is not null and extract_date >= {{ build_date_start('valid_from', 0) }}
),
{% endif %}

per_extract as (
    select w.account, w.h3_cell, w.extract_date, count(*)::integer as n_withdrawals
    from {{ ref('int_withdrawals_located') }} as w
    {% if is_incremental() %}
        inner join touched as t on w.account = t.account and w.h3_cell = t.h3_cell
    {% endif %}
    where w.h3_cell is not null
    group by 1, 2, 3
)

select
    account,
    h3_cell,
    extract_date as valid_from,
    coalesce(
        lead(extract_date) over (partition by account, h3_cell order by extract_date), date '9999-12-31'
    ) as valid_to,
    sum(n_withdrawals) over (
        partition by account, h3_cell order by extract_date rows between unbounded preceding and current row
    )::integer as withdrawals_known,
    now() as built_at
from per_extract
