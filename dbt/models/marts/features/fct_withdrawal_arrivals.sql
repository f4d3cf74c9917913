{{ config(materialized='view') }}
-- Located withdrawals per cell, by the day they happened and the extract they arrived in:
-- what forecasting reads to know what was known when (labels as of a training origin, the
-- reporting delay, the realised counts). Grain: (h3_cell, event_date, extract_date).
select
    h3_cell,
    event_date,
    extract_date,
    n_withdrawals,
    amount_inr
from {{ ref('int_withdrawals_arrived_by_cell') }}
