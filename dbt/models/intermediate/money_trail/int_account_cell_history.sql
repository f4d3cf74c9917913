{{ config(indexes=[{'columns': ['account', 'valid_from']}]) }}
-- How many of an account's withdrawals in a cell had arrived, as of each extract date:
-- one row per (account, h3_cell) and extract that brought new ones, valid from that
-- extract date until the next one. Lets complaint pressure weigh the cells an account
-- uses by what was known on the day the money arrived. Grain: (account, h3_cell, valid_from).
with

per_extract as (
    select account, h3_cell, extract_date, count(*)::integer as n_withdrawals
    from {{ ref('stg_raw__withdrawals') }}
    where h3_cell is not null
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
    )::integer as withdrawals_known
from per_extract
