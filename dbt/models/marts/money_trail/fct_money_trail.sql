-- Each reported transfer with its complaint (when it has arrived) and the cash
-- withdrawals its receiving account made afterwards. Grain: txn_id.
with

transfers as (
    select * from {{ ref('stg_raw__transactions') }}
),

complaints as (
    select * from {{ ref('stg_raw__complaints') }}
),

withdrawals as (
    select * from {{ ref('stg_raw__withdrawals') }}
),

cashouts as (
    select
        t.txn_id,
        count(w.withdrawal_id)::integer as n_withdrawals_after,
        sum(w.amount_inr) as amount_withdrawn_after,
        min(w.withdrawn_at) as first_withdrawn_at,
        array_agg(distinct w.h3_cell) filter (where w.h3_cell is not null) as withdrawal_cells
    from transfers as t
    inner join withdrawals as w
        on t.to_account = w.account and w.withdrawn_at >= t.txn_at
    group by 1
)

select
    t.txn_id,
    t.ack_no,
    c.ack_no is not null as complaint_arrived,
    c.category,
    c.reported_at,
    c.status as complaint_status,
    t.layer,
    t.from_account,
    t.to_account,
    t.to_ifsc,
    t.amount_inr,
    t.txn_at,
    t.status as transfer_status,
    t.extract_date,
    coalesce(x.n_withdrawals_after, 0) as n_withdrawals_after,
    coalesce(x.amount_withdrawn_after, 0) as amount_withdrawn_after,
    x.first_withdrawn_at,
    x.withdrawal_cells
from transfers as t
left join complaints as c on t.ack_no = c.ack_no
left join cashouts as x on t.txn_id = x.txn_id
