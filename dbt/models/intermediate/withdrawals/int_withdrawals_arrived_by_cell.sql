-- Located withdrawals counted per cell, event day and the extract they arrived in.
-- Grain: (h3_cell, event_date, extract_date).
select
    h3_cell,
    withdrawn_date as event_date,
    extract_date,
    count(*)::integer as n_withdrawals,
    sum(amount_inr) as amount_inr
from {{ ref('int_withdrawals_located') }}
where h3_cell is not null
group by 1, 2, 3
