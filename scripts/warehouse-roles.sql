-- Least-privilege database roles of a warehouse (issue 13). Run by its owner (PGUSER) in every
-- warehouse database: `scripts/pg.sh ensure-db NAME postgis` (make warehouse, the tests),
-- hotspots.db.ensure_roles (init-warehouse), and docker compose (mounted into the postgis image's
-- /docker-entrypoint-initdb.d after scripts/docker-initdb.sql).
-- Idempotent; parameter-free (plain SQL, no psql variables), so psql and psycopg2 both run it.
--
--   hotspots_ingest  writes raw and ingest (the extracts and their ledger); reads ref (gazetteer)
--   hotspots_dbt     writes staging, intermediate, marts, and ref (dbt's seeds); reads raw, ingest
--                    and forecast (the model's outputs: dbt sources; written by hotspots.forecast)
--   hotspots_reader  reads marts and alerts only: the dashboards (Superset's read-only role,
--                    superset/hotspots_superset/provision.py gives it its login and password)
--
-- Roles are created without login here; scripts/pg.sh gives hotspots_ingest and hotspots_dbt a
-- login with a generated password kept in .local/secrets (never in the repository).
-- The owner keeps everything (it creates the schemas and runs the DDL); default privileges grant
-- each role its rights on the tables the owner (or hotspots_dbt) creates later, so a dbt rebuild
-- or a new forecast table needs no new grant.

do $$
declare
    r text;
begin
    foreach r in array array['hotspots_ingest', 'hotspots_dbt', 'hotspots_reader'] loop
        if not exists (select 1 from pg_roles where rolname = r) then
            begin
                execute format('create role %I nologin', r);
            exception when duplicate_object or unique_violation then
                null;  -- created at the same moment for another warehouse
            end;
        end if;
    end loop;
end
$$;

do $$
declare
    owner text := current_user;
    db text := current_database();
    s text;
    creators text[] := array[current_user, 'hotspots_dbt'];
    c text;
    writes constant text := 'select, insert, update, delete, truncate';
begin
    foreach s in array array['raw', 'ingest', 'ref', 'staging', 'intermediate', 'marts', 'forecast', 'alerts'] loop
        execute format('create schema if not exists %I', s);
    end loop;
    execute format('grant connect on database %I to hotspots_ingest, hotspots_dbt, hotspots_reader', db);

    -- Nothing beyond what is granted below (a re-run also takes back what an older grant gave).
    foreach s in array array['raw', 'ingest', 'ref', 'staging', 'intermediate', 'marts', 'forecast', 'alerts'] loop
        execute format('revoke all on schema %I from hotspots_ingest, hotspots_dbt, hotspots_reader', s);
        execute format('revoke all on all tables in schema %I from hotspots_ingest, hotspots_dbt, hotspots_reader', s);
    end loop;

    -- ingest: writes raw and ingest, reads ref.
    foreach s in array array['raw', 'ingest'] loop
        execute format('grant usage on schema %I to hotspots_ingest', s);
        execute format('grant %s on all tables in schema %I to hotspots_ingest', writes, s);
        execute format('grant usage, select, update on all sequences in schema %I to hotspots_ingest', s);
        execute format('alter default privileges for role %I in schema %I grant %s on tables to hotspots_ingest',
                       owner, s, writes);
        execute format('alter default privileges for role %I in schema %I grant usage, select, update on sequences '
                       'to hotspots_ingest', owner, s);
    end loop;

    -- dbt: reads raw, ingest and forecast; creates and writes staging, intermediate, marts and ref (seeds).
    foreach s in array array['raw', 'ingest', 'forecast'] loop
        execute format('grant usage on schema %I to hotspots_dbt', s);
        execute format('grant select on all tables in schema %I to hotspots_dbt', s);
        execute format('alter default privileges for role %I in schema %I grant select on tables to hotspots_dbt',
                       owner, s);
    end loop;
    foreach s in array array['ref', 'staging', 'intermediate', 'marts'] loop
        execute format('grant usage, create on schema %I to hotspots_dbt', s);
        execute format('grant %s on all tables in schema %I to hotspots_dbt', writes, s);
        execute format('alter default privileges for role %I in schema %I grant %s on tables to hotspots_dbt',
                       owner, s, writes);
    end loop;
    execute 'grant usage on schema ref to hotspots_ingest';
    execute 'grant select on all tables in schema ref to hotspots_ingest';
    execute format('alter default privileges for role %I in schema ref grant select on tables to hotspots_ingest',
                   owner);

    -- dashboards: read marts and alerts, nothing else (views in marts read raw and forecast on their
    -- owner's rights).
    foreach s in array array['marts', 'alerts'] loop
        execute format('grant usage on schema %I to hotspots_reader', s);
        execute format('grant select on all tables in schema %I to hotspots_reader', s);
        foreach c in array creators loop
            execute format('alter default privileges for role %I in schema %I grant select on tables to hotspots_reader',
                           c, s);
        end loop;
    end loop;
end
$$;
