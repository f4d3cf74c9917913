-- Terminals seen in each cell, with the extract date they were first seen in.
-- Grain: (h3_cell, terminal_id).
select
    h3_cell,
    terminal_id,
    min(extract_date) as first_extract_date
from {{ ref('int_withdrawals_located') }}
where h3_cell is not null and terminal_id is not null
group by 1, 2
