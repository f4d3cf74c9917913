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
    indexes=[{'columns': ['arrival_date', 'h3_cell'], 'unique': true}, {'columns': ['built_at']}],
) }}
with

bounds as (
    select
        {{ build_date_start('arrival_date', 0, requires=['pressure_fresh']) }} as first_date,
        {{ build_date_end(0) }} as last_date
),

transfers as (
    select
        t.to_account, t.amount_inr, t.extract_date as arrival_date,
        t.txn_date >= t.extract_date - 1 as is_fresh,
        case when c.extract_date <= t.extract_date then c.category end as category
    from {{ ref('stg_raw__transactions') }} as t
    cross join bounds as b
    {% if is_incremental() -%}
        -- A day's transfers look their complaint up by its key (offset 0 keeps the subquery
        -- a probe of the primary key per transfer): the planner would otherwise hash every
        -- complaint ever loaded (12 M at two years) for a few tens of thousands of transfers.
        left join lateral (
            select x.category, x.extract_date
            from {{ ref('int_complaint_arrivals') }} as x
            where x.ack_no = t.ack_no
            offset 0
        ) as c on true
    {%- else -%}
        left join {{ ref('int_complaint_arrivals') }} as c on t.ack_no = c.ack_no
    {%- endif %}
    where t.status = 'COMPLETED' and t.extract_date between b.first_date and b.last_date
),

-- How many cells a transfer is shared among, and by which weights, depends only on its
-- account and arrival date: the transfers are summed per (account, arrival date) first, and
-- each sum is shared among the account's cells once (sharing is linear, so this equals
-- sharing every transfer and summing per cell, without a row per transfer and cell).
account_days as (
    select
        to_account,
        arrival_date,
        sum(amount_inr) as amount_inr,
        count(*)::double precision as transfers,
        count(*) filter (where is_fresh)::double precision as fresh,
        count(*) filter (where category in ('UPI', 'CARD', 'NET_BANKING'))::double precision as payment_fraud,
        count(*) filter (
            where category in ('CUSTOMER_CARE', 'KYC_IMPERSONATION', 'DIGITAL_ARREST')
        )::double precision as impersonation,
        count(*) filter (where category in ('INVESTMENT', 'JOB', 'LOAN_APP'))::double precision as scheme,
        count(*) filter (where category in ('SEXTORTION', 'OTHER'))::double precision as other
    from transfers
    group by 1, 2
),

shared as (
    select
        a.*,
        k.h3_cell,
        1.0::double precision / count(*) over (partition by a.to_account, a.arrival_date) as cell_share,
        k.withdrawals_known::double precision
        / sum(k.withdrawals_known) over (partition by a.to_account, a.arrival_date) as weighted_share
    from account_days as a
    inner join {{ ref('int_account_cell_history') }} as k
        on
            a.to_account = k.account
            and k.valid_from <= a.arrival_date
            and a.arrival_date < k.valid_to
)

select
    h3_cell,
    arrival_date,
    sum(amount_inr * cell_share) as pressure_amount_inr,
    sum(transfers * cell_share) as pressure_transfers,
    sum(transfers * weighted_share) as pressure_weighted,
    sum(fresh * weighted_share) as pressure_fresh,
    count(*)::integer as pressure_accounts,
    sum(payment_fraud * cell_share) filter (where payment_fraud > 0) as pressure_payment_fraud,
    sum(impersonation * cell_share) filter (where impersonation > 0) as pressure_impersonation,
    sum(scheme * cell_share) filter (where scheme > 0) as pressure_scheme,
    sum(other * cell_share) filter (where other > 0) as pressure_other,
    now() as built_at
from shared
group by 1, 2
