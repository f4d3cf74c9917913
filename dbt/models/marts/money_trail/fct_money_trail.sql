-- A view: nothing in the platform reads this grain (the alerts' money trail and the dashboards'
-- flows read raw through its indexes), and as a table it was every transfer ever loaded (16 M at
-- two years) rewritten whole on every build: 59-68 s of the full rebuild. Read for an account or
-- a complaint, the view goes through raw.transactions' indexes on to_account and ack_no.
{{ config(materialized='view') }}
-- Each reported transfer with its complaint (when it has arrived) and the cash-out
-- record of its receiving account. Grain: txn_id. (Per-transfer matching of later
-- withdrawals would join every transfer to every withdrawal of busy mule accounts;
-- the account's record says where the money is likely to have left.)
with

transfers as (
    select * from {{ ref('stg_raw__transactions') }}
),

complaints as (
    select * from {{ ref('stg_raw__complaints') }}
),

mule_accounts as (
    select * from {{ ref('dim_mule_accounts') }}
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
    coalesce(m.n_withdrawals, 0) as receiver_n_withdrawals,
    coalesce(m.amount_withdrawn_inr, 0) as receiver_amount_withdrawn_inr,
    m.n_cashout_cells as receiver_n_cashout_cells,
    m.cashout_cells as receiver_cashout_cells
from transfers as t
left join complaints as c on t.ack_no = c.ack_no
left join mule_accounts as m on t.to_account = m.account
