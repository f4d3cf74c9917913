-- First start of the postgis container (docker compose), in the warehouse database POSTGRES_DB:
-- the metadata databases beside the warehouse. The warehouse's least-privilege roles follow from
-- scripts/warehouse-roles.sql, mounted beside this file (20-warehouse-roles.sql); the roles have no
-- login there: airflow-init (scripts/compose-init.sh) gives hotspots_ingest and hotspots_dbt theirs from
-- .env, and superset-init creates the superset database.
create database airflow;
create database mlflow;
