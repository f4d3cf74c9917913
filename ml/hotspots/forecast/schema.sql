-- The forecast outputs: schema `forecast`, owned and written by hotspots.forecast (store.py,
-- score.py, backtest.py); dbt reads them as sources (dbt/models/staging/forecast/_forecast__sources.yml)
-- and never builds them. Idempotent: run by `make warehouse` (hotspots.cli init-warehouse) and
-- before every write.
--
-- The contract's names (../shared/contract/OUTPUTS.md) stay reachable in schema marts:
-- marts.hotspot_forecast and marts.backtest_forecast are views of the tables here, with the
-- contract's columns and types, and so are the other tables (readers that still use the
-- marts.* names keep working; new readers use forecast.*).
--
-- Warehouses built before the schema existed kept these tables in marts: the first run moves
-- each one here (ALTER TABLE ... SET SCHEMA keeps its rows, keys, indexes and grants) and
-- puts the view in its place.

create schema if not exists forecast;
create schema if not exists marts;

do $$
declare
    t text;
begin
    foreach t in array array['hotspot_forecast', 'hotspot_forecast_history', 'backtest_forecast',
                             'hotspot_explanations', 'backtest_baselines', 'backtest_metrics',
                             'backtest_district_metrics'] loop
        if exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where n.nspname = 'marts' and c.relname = t and c.relkind in ('r', 'p')) then
            if to_regclass(format('forecast.%I', t)) is not null then
                raise exception 'marts.% and forecast.% are both tables: move the rows you keep into forecast.% '
                                'and drop marts.%', t, t, t, t;
            end if;
            execute format('alter table marts.%I set schema forecast', t);
            raise notice 'forecast: moved table marts.% to forecast.%', t, t;
        end if;
    end loop;
end
$$;

-- The latest forecast (replaced whole by each scoring run), every issued forecast, and the
-- model's forecasts of a backtest: one shape, the contract's columns (OUTPUTS.md, Tables).
do $$
declare
    t text;
begin
    foreach t in array array['hotspot_forecast', 'hotspot_forecast_history', 'backtest_forecast'] loop
        execute format($ddl$
            create table if not exists forecast.%I (
                h3_cell text not null,
                h3_res smallint not null default 8 check (h3_res = 8),
                forecast_date date not null,
                horizon_days smallint not null check (horizon_days in (1, 7)),
                issued_at timestamptz not null,
                expected_withdrawals double precision not null check (expected_withdrawals >= 0),
                p_any double precision not null check (p_any between 0 and 1),
                risk_rank integer not null check (risk_rank >= 1),
                model_version text not null,
                state text,
                district text,
                geom geometry(Polygon, 4326) not null,
                primary key (forecast_date, horizon_days, h3_cell),
                unique (forecast_date, horizon_days, risk_rank)
            )$ddl$, t);
        execute format('create index if not exists %I on forecast.%I using gist (geom)', t || '_geom', t);
    end loop;
end
$$;

-- SHAP explanations of the top cells of each forecast, in words.
create table if not exists forecast.hotspot_explanations (
    forecast_date date not null,
    horizon_days smallint not null,
    h3_cell text not null,
    risk_rank integer not null,
    rank smallint not null,
    feature text not null,
    value double precision,
    contribution double precision not null,
    factor double precision not null,
    text text not null,
    model_version text not null,
    issued_at timestamptz not null,
    primary key (forecast_date, horizon_days, h3_cell, rank)
);

-- A backtest's baseline forecasts and metrics (make backtest).
create table if not exists forecast.backtest_baselines (
    method text not null,
    h3_cell text not null,
    forecast_date date not null,
    horizon_days smallint not null,
    expected_withdrawals double precision not null,
    p_any double precision not null,
    risk_rank integer not null,
    primary key (method, forecast_date, horizon_days, h3_cell)
);

create table if not exists forecast.backtest_metrics (
    method text not null,
    forecast_date date not null,
    horizon_days smallint not null,
    metric text not null,
    value double precision,
    computed_at timestamptz not null default now(),
    primary key (method, forecast_date, horizon_days, metric)
);

create table if not exists forecast.backtest_district_metrics (
    method text not null,
    horizon_days smallint not null,
    district text not null,
    n_dates integer not null,
    metric text not null,
    value double precision,
    computed_at timestamptz not null default now(),
    primary key (method, horizon_days, district, metric)
);

-- The names in marts: one view per table, created when missing (never replaced: a reader's
-- open query is not waited on).
do $$
declare
    t text;
begin
    foreach t in array array['hotspot_forecast', 'hotspot_forecast_history', 'backtest_forecast',
                             'hotspot_explanations', 'backtest_baselines', 'backtest_metrics',
                             'backtest_district_metrics'] loop
        if to_regclass(format('marts.%I', t)) is null then
            execute format('create view marts.%I as select * from forecast.%I', t, t);
            execute format('comment on view marts.%I is %L', t,
                           format('The rows of forecast.%s (written by hotspots.forecast), under the name '
                                  'readers use; see docs/forecasting.md, Where the forecast lives.', t));
        end if;
    end loop;
end
$$;
