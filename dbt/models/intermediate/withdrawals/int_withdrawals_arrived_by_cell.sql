{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    unique_key='extract_date',
    indexes=[{'columns': ['h3_cell', 'event_date', 'extract_date'], 'unique': true},
             {'columns': ['extract_date']}, {'columns': ['built_at']}],
    pre_hook="{% if is_incremental() %}delete from {{ this }} where extract_date in
              ({{ rebuilt_extract_dates(ref('int_withdrawals_located')) }}){% endif %}",
) }}
-- Located withdrawals counted per cell, event day and the extract they arrived in.
-- Grain: (h3_cell, event_date, extract_date).
-- Incremental: the extract dates of the located rows built since this table was (a new
-- delivery's rows, and older rows a later delivery re-sent and so re-located) are counted
-- again whole. Their old counts are deleted first (pre-hook), so a date whose rows all
-- lost their cell leaves nothing behind; every other date's rows are as a full build gives.
select
    h3_cell,
    withdrawn_date as event_date,
    extract_date,
    count(*)::integer as n_withdrawals,
    sum(amount_inr) as amount_inr,
    now() as built_at
from {{ ref('int_withdrawals_located') }}
where
    h3_cell is not null
{% if is_incremental() %}
    and extract_date in ({{ rebuilt_extract_dates(ref('int_withdrawals_located')) }})
{% endif %}
group by 1, 2, 3
