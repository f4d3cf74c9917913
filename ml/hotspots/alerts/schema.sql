-- Alerts (issue 9): decisions, the outbox, delivery attempts, acknowledgements, silences.
-- Applied idempotently by `python -m hotspots.cli init-warehouse` (and before every dispatch).
-- Names of alerts.alerts, alerts.attempts, alerts.acknowledgements and alerts.silences are
-- read by the Superset dashboards and the acknowledgement page: keep them.
create schema if not exists alerts;

-- One dispatch run: what was decided for which forecast, and when.
create table if not exists alerts.runs (
    run_id          text primary key,
    warehouse       text not null,
    forecast_date   date,
    issued_at       timestamptz,                  -- of the forecast the run decided on
    decided_at      timestamptz not null,         -- the run's clock (`now`)
    n_alerts        integer not null default 0,
    n_escalations   integer not null default 0,
    n_digest        integer not null default 0,
    n_silenced      integer not null default 0,
    n_capped        integer not null default 0,
    n_messages      integer not null default 0
);

-- One row per (h3_cell, forecast_date, horizon_days, recipient, kind): the decision.
create table if not exists alerts.alerts (
    alert_id             text primary key,        -- short hash of the idempotency key
    idempotency_key      text not null unique,    -- cell|forecast date|horizon|recipient|kind
    run_id               text not null,
    h3_cell              text not null,
    forecast_date        date not null,
    horizon_days         smallint not null check (horizon_days in (1, 7)),
    recipient            text not null,           -- name of the entry in alerts/recipients.yml
    jurisdiction_level   text not null check (jurisdiction_level in ('national', 'state', 'district', 'bank')),
    state                text,
    district             text,
    bank                 text,                    -- 4-letter IFSC prefix (bank liaisons), else null
    kind                 text not null check (kind in ('alert', 'escalation', 'digest')),
    tier                 text not null,           -- critical | high | watch (config/alerts.yml)
    expected_withdrawals double precision,
    p_any                double precision,
    risk_rank            integer,
    status               text not null default 'pending'
                         check (status in ('pending', 'sent', 'failed', 'dead_letter', 'silenced')),
    attempts             integer not null default 0,
    last_error           text,
    created_at           timestamptz not null default now(),
    sent_at              timestamptz,
    -- beyond the fixed names
    reasons              text[] not null default '{}',  -- which rule made the tier (e.g. 'top 3 of district')
    language             text not null default 'en',
    escalated_from       text references alerts.alerts (alert_id),
    escalation_level     smallint not null default 0,   -- 0 the first alert, 1 state, 2 national
    silence_id           bigint,
    message_id           text,                    -- alerts.messages row that carries it (first channel)
    unique (h3_cell, forecast_date, horizon_days, recipient, kind)
);
create index if not exists alerts_recipient_created on alerts.alerts (recipient, created_at);
create index if not exists alerts_cell on alerts.alerts (h3_cell, horizon_days, recipient);
create index if not exists alerts_status on alerts.alerts (status);

-- The outbox: one grouped message per (run, recipient, kind group, channel), written in the
-- same transaction as the decisions it carries. The delivery worker claims rows from here.
create table if not exists alerts.messages (
    message_id      text primary key,             -- hash of run|recipient|group|channel and its alerts
    run_id          text not null,
    recipient       text not null,
    channel         text not null,                -- name of the recipient's channel (email, sms, webhook, ...)
    channel_kind    text not null check (channel_kind in ('email', 'sms', 'webhook', 'chat')),
    kind            text not null check (kind in ('alert', 'escalation', 'digest')),
    language        text not null,
    subject         text not null,
    body_text       text not null,
    body_html       text,
    payload         jsonb,                        -- structured alerts for webhooks
    map_cells       text[] not null default '{}', -- (h3_cell) maps attached to an email
    forecast_date   date,
    status          text not null default 'pending'
                    check (status in ('pending', 'sending', 'sent', 'failed', 'dead_letter')),
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    claimed_by      text,                         -- host:pid of the worker holding the lease
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz not null default now(),
    sent_at         timestamptz
);
create index if not exists messages_due on alerts.messages (status, next_attempt_at);
-- Message bodies and payloads (tens of MB for a national run) compressed with lz4 where the
-- server has it: the outbox is written in about 40 % less time than with the default pglz.
-- Altered once (the table lock is taken only while a column is not lz4 yet).
do $$
begin
    if exists (select 1 from pg_attribute where attrelid = 'alerts.messages'::regclass
               and attname in ('body_text', 'body_html', 'payload') and attcompression <> 'l') then
        alter table alerts.messages alter column body_text set compression lz4,
                                    alter column body_html set compression lz4,
                                    alter column payload set compression lz4;
    end if;
exception when feature_not_supported or invalid_parameter_value then
    null;  -- a server built without lz4 keeps pglz
end $$;
-- What a dispatcher claims next, in order, without reading the messages already sent.
create index if not exists messages_claimable on alerts.messages (created_at, message_id)
    where status in ('pending', 'failed');
create table if not exists alerts.message_alerts (
    message_id text not null references alerts.messages on delete cascade,
    alert_id   text not null references alerts.alerts on delete cascade,
    primary key (message_id, alert_id)
);
create index if not exists message_alerts_alert on alerts.message_alerts (alert_id);

-- Every delivery attempt of every alert, per channel.
create table if not exists alerts.attempts (
    alert_id     text not null references alerts.alerts on delete cascade,
    attempt_no   integer not null,
    attempted_at timestamptz not null,
    ok           boolean not null,
    error        text,
    channel      text not null,
    message_id   text,
    primary key (alert_id, channel, attempt_no)
);

-- Who acknowledged which alert, what they did, and later what came of it.
create table if not exists alerts.acknowledgements (
    ack_id          bigserial primary key,
    alert_id        text not null references alerts.alerts (alert_id),
    acknowledged_by text not null,
    acknowledged_at timestamptz not null default now(),
    action          text not null check (action in ('patrol', 'bank_alerted', 'account_frozen', 'nothing_done')),
    outcome         text check (outcome in ('cash_seized', 'accounts_frozen', 'nothing_found')),
    outcome_at      timestamptz,
    note            text
);
create index if not exists acknowledgements_alert on alerts.acknowledgements (alert_id);

-- Silences: hold alerts of a cell, district or bank back during a time range (recorded as silenced).
create table if not exists alerts.silences (
    silence_id  bigserial primary key,
    source      text not null default 'command' check (source in ('config', 'command')),
    h3_cell     text,
    state       text,
    district    text,
    bank        text,
    starts_at   timestamptz not null,
    ends_at     timestamptz not null,
    created_by  text not null,
    reason      text not null,
    created_at  timestamptz not null default now(),
    check (ends_at > starts_at),
    check (h3_cell is not null or state is not null or district is not null or bank is not null)
);

-- Maps rendered once per (cell, forecast date), attached to every email that names the cell.
create table if not exists alerts.maps (
    h3_cell       text not null,
    forecast_date date not null,
    png           bytea not null,
    seconds       double precision,
    rendered_at   timestamptz not null default now(),
    primary key (h3_cell, forecast_date)
);
