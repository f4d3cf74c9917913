-- First start of the postgis container (docker compose), in the warehouse database POSTGRES_DB:
-- the metadata databases beside the warehouse. The warehouse's least-privilege roles follow from
-- scripts/warehouse-roles.sql, mounted beside this file (20-warehouse-roles.sql); the roles have no
-- login there: give hotspots_ingest and hotspots_dbt one with `alter role ... login password ...`
-- from the secret store.
create database airflow;
create database mlflow;
