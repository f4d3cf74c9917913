-- Accounts that received complaint money or withdrew cash: when first and last seen,
-- how many complaints fed them, and the cells where they cashed out. Grain: account.
with

received as (
    select
        to_account as account,
        min(txn_at) as first_received_at,
        max(txn_at) as last_received_at,
        count(distinct ack_no)::integer as n_complaints,
        sum(amount_inr) as amount_received_inr,
        min(layer) as min_layer
    from {{ ref('stg_raw__transactions') }}
    group by 1
),

withdrawn as (
    select
        account,
        min(withdrawn_at) as first_withdrawn_at,
        max(withdrawn_at) as last_withdrawn_at,
        count(*)::integer as n_withdrawals,
        sum(amount_inr) as amount_withdrawn_inr,
        array_agg(distinct h3_cell) filter (where h3_cell is not null) as cashout_cells
    from {{ ref('int_withdrawals_located') }}
    group by 1
)

select
    coalesce(r.account, w.account) as account,
    least(r.first_received_at, w.first_withdrawn_at) as first_seen_at,
    greatest(r.last_received_at, w.last_withdrawn_at) as last_seen_at,
    coalesce(r.n_complaints, 0) as n_complaints,
    coalesce(r.amount_received_inr, 0) as amount_received_inr,
    r.min_layer,
    coalesce(w.n_withdrawals, 0) as n_withdrawals,
    coalesce(w.amount_withdrawn_inr, 0) as amount_withdrawn_inr,
    coalesce(cardinality(w.cashout_cells), 0) as n_cashout_cells,
    w.cashout_cells
from received as r
full outer join withdrawn as w on r.account = w.account
