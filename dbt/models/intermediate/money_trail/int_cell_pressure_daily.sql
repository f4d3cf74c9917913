-- Complaint pressure: money that newly arrived (in the extract of arrival_date) in
-- accounts that, as far as was known on that date, had cashed out in a cell before.
-- Each transfer's amount is shared equally among the cells its receiving account
-- was known to use; the weighted variant shares it by how many of the account's known
-- withdrawals were in each cell, and the fresh one counts only transfers made on the
-- arrival day or the day before (money not yet withdrawn, most likely). Only completed
-- transfers count (held or reversed money is not withdrawn). Grain: (h3_cell, arrival_date).
-- Incremental by arrival date: a day's pressure is fixed once the extracts up to it are in
-- (see macros/feature_dates.sql).
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    unique_key='arrival_date',
    indexes=[{'columns': ['arrival_date', 'h3_cell'], 'unique': true}],
) }}
with

bounds as (
    select
        {{ build_date_start('arrival_date', 0, requires=['pressure_fresh']) }} as first_date,
        {{ build_date_end(0) }} as last_date
),

transfers as (
    select
        t.txn_id, t.ack_no, t.to_account, t.amount_inr, t.extract_date as arrival_date,
        t.txn_date >= t.extract_date - 1 as is_fresh
    from {{ ref('stg_raw__transactions') }} as t, bounds as b
    where t.status = 'COMPLETED' and t.extract_date between b.first_date and b.last_date
),

known_cells as (
    select account, h3_cell, valid_from, valid_to, withdrawals_known
    from {{ ref('int_account_cell_history') }}
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
        k.withdrawals_known::double precision
        / sum(k.withdrawals_known) over (partition by t.txn_id) as weighted_share,
        t.is_fresh,
        case when c.extract_date <= t.arrival_date then c.category end as category
    from transfers as t
    inner join known_cells as k
        on
            t.to_account = k.account
            and k.valid_from <= t.arrival_date
            and t.arrival_date < k.valid_to
    left join complaints as c on t.ack_no = c.ack_no
)

select
    h3_cell,
    arrival_date,
    sum(amount_share) as pressure_amount_inr,
    sum(transfer_share) as pressure_transfers,
    sum(weighted_share) as pressure_weighted,
    coalesce(sum(weighted_share) filter (where is_fresh), 0) as pressure_fresh,
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
