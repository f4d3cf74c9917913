-- Where each account has cashed out, and since which extract we know it.
-- Grain: (account, h3_cell).
select
    account,
    h3_cell,
    min(extract_date) as first_extract_date,
    count(*)::integer as n_withdrawals
from {{ ref('int_withdrawals_located') }}
where h3_cell is not null
group by 1, 2
