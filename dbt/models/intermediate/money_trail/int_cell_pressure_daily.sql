-- Complaint pressure: money that newly arrived (in the extract of arrival_date) in
-- accounts that, as far as was known on that date, had cashed out in a cell before.
-- Each transfer's amount is shared equally among the cells its receiving account
-- was known to use. Only completed transfers count (held or reversed money is not
-- withdrawn). Grain: (h3_cell, arrival_date). Incremental by arrival date: a day's
-- pressure is fixed once the extracts up to it are in (see macros/feature_dates.sql).
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    unique_key='arrival_date',
    indexes=[{'columns': ['arrival_date', 'h3_cell'], 'unique': true}],
) }}
with

bounds as (
    select {{ build_date_start('arrival_date', 0) }} as first_date, {{ build_date_end(0) }} as last_date
),

transfers as (
    select t.txn_id, t.ack_no, t.to_account, t.amount_inr, t.extract_date as arrival_date
    from {{ ref('stg_raw__transactions') }} as t, bounds as b
    where t.status = 'COMPLETED' and t.extract_date between b.first_date and b.last_date
),

known_cells as (
    select account, h3_cell, first_extract_date
    from {{ ref('int_account_cashout_cells') }}
),

complaints as (
    select ack_no, category, extract_date from {{ ref('int_complaint_arrivals') }}
),

shared as (
    select
        t.txn_id,
        t.arrival_date,
        t.to_account,
        k.h3_cell,
        t.amount_inr / count(*) over (partition by t.txn_id) as amount_share,
        1.0::double precision / count(*) over (partition by t.txn_id) as transfer_share,
        case when c.extract_date <= t.arrival_date then c.category end as category
    from transfers as t
    inner join known_cells as k
        on t.to_account = k.account and k.first_extract_date <= t.arrival_date
    left join complaints as c on t.ack_no = c.ack_no
)

select
    h3_cell,
    arrival_date,
    sum(amount_share) as pressure_amount_inr,
    sum(transfer_share) as pressure_transfers,
    count(distinct to_account)::integer as pressure_accounts,
    sum(transfer_share) filter (where category in ('UPI', 'CARD', 'NET_BANKING')) as pressure_payment_fraud,
    sum(transfer_share) filter (
        where category in ('CUSTOMER_CARE', 'KYC_IMPERSONATION', 'DIGITAL_ARREST')
    ) as pressure_impersonation,
    sum(transfer_share) filter (where category in ('INVESTMENT', 'JOB', 'LOAN_APP')) as pressure_scheme,
    sum(transfer_share) filter (where category in ('SEXTORTION', 'OTHER')) as pressure_other,
    now() as built_at
from shared
group by 1, 2
