# Hotspots: forecasting where fraud proceeds are withdrawn, per H3 cell of India.
# Two commands on a fresh Debian machine: `make run` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))

# Connection settings: one place. Defaults work as they are; override in .env or the environment.
-include $(ROOT)/.env
PGHOST ?= 127.0.0.1
PGPORT ?= 55432
PGUSER ?= hotspots
# No default password: the owner's is generated into .local/secrets/pg_owner when the cluster is
# created (a cluster made before keeps 'hotspots', said once; scripts/pg.sh rotate-owner-password).
ifndef PGPASSWORD
PGPASSWORD := $(shell $(ROOT)/scripts/pg.sh owner-password)
endif
WAREHOUSE ?= hotspots
AIRFLOW_PORT ?= 8080
SUPERSET_PORT ?= 8088
MLFLOW_PORT ?= 5000

# `make run` defaults: 120 days at a tenth of national volume.
START ?= 2026-01-01
DAYS ?= 120
SCALE ?= 0.1
SEED ?= 7
DIRTY_RATE ?= 0.02
DEFAULT_LANDING := $(ROOT)/.local/landing/default/extracts

VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
LOCAL := $(ROOT)/.local
PIPELINE_STAMP := $(VENV)/.installed-pipeline
# redis-server: the Celery broker of the distributed path (scripts/celery.sh, make up-celery).
SYSTEM_PACKAGES := postgresql-15 postgresql-15-postgis-3 chromium chromium-driver redis-server
# The stamp names the package list, so adding a package installs it on machines set up before.
SYSTEM_STAMP := $(LOCAL)/.installed-system-$(shell echo $(SYSTEM_PACKAGES) | md5sum | cut -c1-8)
# Superset 6.1 in its own virtualenv (SQLAlchemy 1.4, pandas 2.1): superset/, scripts/superset.sh.
SUPERSET_VENV := $(ROOT)/.venv-superset
SUPERSET_STAMP := $(SUPERSET_VENV)/.installed-superset

export PGHOST PGPORT PGUSER PGPASSWORD WAREHOUSE SUPERSET_PORT
# The landing folder the scheduled ingest_extracts waits on (make up), and the warehouse it feeds
# (default WAREHOUSE); unset, ingest runs only when triggered (docs/architecture.md, Scheduling).
export HOTSPOTS_LANDING HOTSPOTS_LANDING_WAREHOUSE HOTSPOTS_FORECAST_DEADLINE
export PATH := $(VENV)/bin:$(PATH)
export HOTSPOTS_ROOT := $(ROOT)
# A keyed hash pseudonymises victim mobiles; the key comes from the environment, or a
# per-checkout random key kept in .local (never committed).
HOTSPOTS_PII_KEY ?= $(shell mkdir -p $(LOCAL) && ( [ -s $(LOCAL)/pii_key ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(LOCAL)/pii_key ) && cat $(LOCAL)/pii_key)
export HOTSPOTS_PII_KEY
export AIRFLOW_HOME := $(LOCAL)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(ROOT)/dags
# Airflow's, dbt's, MLflow's and the libraries' settings shared with docker-compose.yml (its env_file):
# one source of truth, config/airflow.env (parallelism, import timeouts, telemetry off, ...).
SHARED_ENV := $(ROOT)/config/airflow.env
# CELERY=1 (make up-celery): the CeleryExecutor's settings too, shared with compose (config/celery.env),
# the broker a Redis on a loopback port under .local (scripts/celery.sh), its password generated there.
ifneq ($(strip $(CELERY)),)
SHARED_ENV += $(ROOT)/config/celery.env
REDIS_PORT ?= 56379
REDIS_PASSWORD ?= $(shell mkdir -p $(LOCAL)/redis && ( [ -s $(LOCAL)/redis/password ] || ( umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(LOCAL)/redis/password ) ) && cat $(LOCAL)/redis/password)
export REDIS_PORT REDIS_PASSWORD CELERY_WORKERS
export AIRFLOW__CELERY__BROKER_URL = redis://:$(REDIS_PASSWORD)@127.0.0.1:$(REDIS_PORT)/0
else
export AIRFLOW__CORE__EXECUTOR := LocalExecutor
endif
include $(SHARED_ENV)
export $(shell sed -n 's/^\([A-Z][A-Z0-9_]*\)=.*/\1/p' $(SHARED_ENV))
# Airflow's metadata database. make test, test-unit and fuzz use one of their own: their `airflow dags
# test` runs emit asset events, which must never reach the scheduler `make up` runs (they would start
# runs for test warehouses, and it would pick up the tests' own runs once their DAGs are unpaused).
AIRFLOW_META_DB ?= airflow
test test-unit fuzz: AIRFLOW_META_DB = airflow_test
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN = postgresql+psycopg2://$(PGUSER):$(PGPASSWORD)@$(PGHOST):$(PGPORT)/$(AIRFLOW_META_DB)
export AIRFLOW__LOGGING__BASE_LOG_FOLDER := $(LOCAL)/airflow/logs
# The warehouse as Airflow connections (tasks: PostgresHook; dbt: Cosmos' profile mapping), one per
# database role (docs/architecture.md, Database roles): the owner's (DDL, grants, training, scoring,
# alerts), hotspots_ingest's (load_extract) and hotspots_dbt's (build_features); server and port
# from the same settings, the roles' passwords HOTSPOTS_*_PASSWORD, else the ones generated into
# .local/secrets (scripts/pg.sh gives the roles those logins); each run picks the database.
ifndef HOTSPOTS_INGEST_PASSWORD
HOTSPOTS_INGEST_PASSWORD := $(shell $(ROOT)/scripts/pg.sh secret hotspots_ingest)
endif
ifndef HOTSPOTS_DBT_PASSWORD
HOTSPOTS_DBT_PASSWORD := $(shell $(ROOT)/scripts/pg.sh secret hotspots_dbt)
endif
export HOTSPOTS_INGEST_PASSWORD HOTSPOTS_DBT_PASSWORD
export AIRFLOW_CONN_HOTSPOTS_WAREHOUSE := {"conn_type": "postgres", "host": "$(PGHOST)", "port": $(PGPORT), "login": "$(PGUSER)", "password": "$(PGPASSWORD)", "schema": "$(WAREHOUSE)"}
export AIRFLOW_CONN_HOTSPOTS_INGEST := {"conn_type": "postgres", "host": "$(PGHOST)", "port": $(PGPORT), "login": "hotspots_ingest", "password": "$(HOTSPOTS_INGEST_PASSWORD)", "schema": "$(WAREHOUSE)"}
export AIRFLOW_CONN_HOTSPOTS_DBT := {"conn_type": "postgres", "host": "$(PGHOST)", "port": $(PGPORT), "login": "hotspots_dbt", "password": "$(HOTSPOTS_DBT_PASSWORD)", "schema": "$(WAREHOUSE)"}
export AIRFLOW__API__PORT := $(AIRFLOW_PORT)
export AIRFLOW__API__BASE_URL := http://127.0.0.1:$(AIRFLOW_PORT)
# The UI's users, as user:role (no password here). Their passwords live in the passwords file
# (.local, never in the repository): AIRFLOW_ADMIN_PASSWORD from the environment or .env, else
# generated by `make airflow-init` and printed once; `make up` says where it is.
AIRFLOW_USERS ?= admin:admin
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS := $(AIRFLOW_USERS)
export AIRFLOW_ADMIN_PASSWORD
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE := $(LOCAL)/airflow/passwords.json
AIRFLOW__API_AUTH__JWT_SECRET ?= $(shell mkdir -p $(LOCAL) && ( [ -s $(LOCAL)/jwt_secret ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(LOCAL)/jwt_secret ) && cat $(LOCAL)/jwt_secret)
export AIRFLOW__API_AUTH__JWT_SECRET
# Telemetry off (nothing may wait on the network): config/airflow.env.
# MLflow: the tracking server (scripts/services.sh mlflow; basic-auth app, artifacts served by it).
# Training and scoring talk to it over HTTP with its login; only the server reads its store (the
# cluster's mlflow database, MLFLOW_BACKEND_STORE_URI: environment, never its command line) and
# writes the artifact folder. The admin password: MLFLOW_TRACKING_PASSWORD, else generated into
# .local/mlflow/admin_password (printed by make up).
export MLFLOW_TRACKING_URI := http://127.0.0.1:$(MLFLOW_PORT)
export MLFLOW_BACKEND_STORE_URI := postgresql+psycopg2://$(PGUSER):$(PGPASSWORD)@$(PGHOST):$(PGPORT)/mlflow
MLFLOW_TRACKING_USERNAME ?= admin
MLFLOW_TRACKING_PASSWORD ?= $(shell mkdir -p $(LOCAL)/mlflow && ( [ -s $(LOCAL)/mlflow/admin_password ] || ( umask 077; head -c 18 /dev/urandom | base64 | tr -d '\n/+=' > $(LOCAL)/mlflow/admin_password ) ) && cat $(LOCAL)/mlflow/admin_password)
MLFLOW_FLASK_SERVER_SECRET_KEY ?= $(shell mkdir -p $(LOCAL)/mlflow && ( [ -s $(LOCAL)/mlflow/secret_key ] || ( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(LOCAL)/mlflow/secret_key ) ) && cat $(LOCAL)/mlflow/secret_key)
export MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY
export MLFLOW_AUTH_CONFIG_PATH := $(LOCAL)/mlflow/basic_auth.ini
export HOTSPOTS_MLFLOW_ARTIFACTS := $(LOCAL)/mlflow/artifacts
export MLFLOW_PORT

.PHONY: help deps db warehouse airflow-init mlflow run simulate ingest features train score alerts backtest report bench-quality bench test test-unit lint up down env lock lock-superset lock-hashes superset clean-local

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(SYSTEM_STAMP):
	@scripts/install-system.sh $(SYSTEM_PACKAGES)
	@mkdir -p $(LOCAL) && touch $@

$(PIPELINE_STAMP): requirements/pipeline.lock pyproject.toml
	@scripts/install-python.sh "$(VENV)" requirements/pipeline.lock
	@touch $@

$(SUPERSET_STAMP): requirements/superset.lock
	@scripts/install-python.sh "$(SUPERSET_VENV)" requirements/superset.lock --no-project
	@touch $@

deps: $(SYSTEM_STAMP) $(PIPELINE_STAMP) $(SUPERSET_STAMP) ## install what is missing (Debian packages, pipeline and Superset virtualenvs)

db: $(SYSTEM_STAMP) ## start the local PostgreSQL + PostGIS cluster (harmless if running)
	@scripts/pg.sh start
	@scripts/pg.sh ensure-db $(AIRFLOW_META_DB)
	@scripts/pg.sh ensure-db mlflow

warehouse: db $(PIPELINE_STAMP) ## create the warehouse database WAREHOUSE if missing, with its schemas
	@scripts/pg.sh ensure-db $(WAREHOUSE) postgis
	@$(PY) -m hotspots.cli init-warehouse

airflow-init: db $(PIPELINE_STAMP) ## migrate Airflow's metadata database
	@mkdir -p $(AIRFLOW_HOME)
	@$(PY) -c "from hotspots.settings import airflow_passwords; airflow_passwords()"
	@[ -f $(AIRFLOW_HOME)/.migrated-3.3.2-$(AIRFLOW_META_DB) ] || { echo "airflow: migrating metadata database $(AIRFLOW_META_DB)"; airflow db migrate >$(AIRFLOW_HOME)/migrate.log 2>&1 || { tail -20 $(AIRFLOW_HOME)/migrate.log; exit 1; }; touch $(AIRFLOW_HOME)/.migrated-3.3.2-$(AIRFLOW_META_DB); }

mlflow: db $(PIPELINE_STAMP) ## start the MLflow tracking server if it is not running (login required; artifacts served)
	@scripts/services.sh mlflow

simulate: $(PIPELINE_STAMP) ## simulate extracts: OUT=/abs/dir START= DAYS= SCALE= SEED= [TRUTH=/abs/dir] [VARIANT=name]
	@[ -n "$(OUT)" ] || { echo "make simulate needs OUT=/abs/dir" >&2; exit 2; }
	@$(PY) -m hotspots.simulate --out "$(OUT)" --start $(START) --days $(DAYS) --scale $(SCALE) --seed $(SEED) \
		--dirty-rate $(DIRTY_RATE) $(if $(TRUTH),--truth "$(TRUTH)") --variant $(or $(VARIANT),default)

ingest: warehouse airflow-init ## run the ingest DAG on LANDING (default: the simulated history)
	@scripts/run-dag.sh ingest_extracts '{"landing": "$(or $(LANDING),$(DEFAULT_LANDING))", "warehouse": "$(WAREHOUSE)"}'

features: warehouse airflow-init ## run the features DAG (dbt via Cosmos) on the warehouse
	@scripts/run-dag.sh build_features '{"warehouse": "$(WAREHOUSE)"}'

run: deps warehouse airflow-init mlflow ## the whole pipeline through the scheduler (services started and left up): simulate (unless LANDING=/abs/dir), ingest, features, score, alerts, train (and re-score on a new champion), report, dashboards
ifeq ($(strip $(LANDING)),)
	@if [ -f $(DEFAULT_LANDING)/.complete-$(START)-$(DAYS)-$(SCALE)-$(SEED) ]; then \
		echo "simulate: reusing $(DEFAULT_LANDING)"; \
	else \
		rm -rf $(dir $(DEFAULT_LANDING)) && \
		$(PY) -m hotspots.simulate --out $(DEFAULT_LANDING) --start $(START) --days $(DAYS) --scale $(SCALE) \
			--seed $(SEED) --dirty-rate $(DIRTY_RATE) && touch $(DEFAULT_LANDING)/.complete-$(START)-$(DAYS)-$(SCALE)-$(SEED); \
	fi
endif
	@scripts/services.sh start
	@$(PY) -m hotspots.airflow_api pipeline --warehouse "$(WAREHOUSE)" --landing "$(or $(LANDING),$(DEFAULT_LANDING))"
	@$(PY) -m hotspots.cli report --landing "$(or $(LANDING),$(DEFAULT_LANDING))"
	@scripts/superset.sh provision
	@scripts/superset.sh logins
	@echo "run: every run above is in the Airflow UI with its task logs (http://127.0.0.1:$(AIRFLOW_PORT)); the services stay up (make down stops them)"

train: warehouse airflow-init mlflow ## run the training DAG: evaluate, register, promote if it beats champion and baselines [LANDING= for truth]
	@scripts/run-dag.sh train_model '{"warehouse": "$(WAREHOUSE)", "landing": "$(LANDING)"}'

score: warehouse airflow-init mlflow ## run the scoring DAG: the champion's forecast into marts.hotspot_forecast
	@scripts/run-dag.sh score_hotspots '{"warehouse": "$(WAREHOUSE)"}'

alerts: warehouse airflow-init ## run the alerts DAG: decide and deliver hotspot alerts through Apprise (docs/alerts.md)
	@scripts/run-dag.sh dispatch_alerts '{"warehouse": "$(WAREHOUSE)"}'

backtest: warehouse airflow-init mlflow ## LANDING=/abs/dir START= END=: ingest what is new, build features, rolling-origin backtest
	@[ -n "$(LANDING)" ] && [ -n "$(START)" ] && [ -n "$(END)" ] || { echo "make backtest needs LANDING=/abs/dir START=YYYY-MM-DD END=YYYY-MM-DD" >&2; exit 2; }
	@scripts/run-dag.sh ingest_extracts '{"landing": "$(LANDING)", "warehouse": "$(WAREHOUSE)"}'
	@scripts/run-dag.sh build_features '{"warehouse": "$(WAREHOUSE)"}'
	@$(PY) -m hotspots.cli backtest --start $(START) --end $(END) --landing "$(LANDING)"

report: warehouse ## print what the warehouse holds: loaded, quarantined, rejected, by extract
	@$(PY) -m hotspots.cli report

bench: deps db mlflow airflow-init ## every stage's time, rows/s and peak memory, the targets met or not, one table -> docs/benchmarks.md (BENCH_DAYS, BENCH_SCALE; BENCH_QUICK=1: a few minutes, table in .local/bench, no day under Airflow; BENCH_ARGS=--growth)
	@$(PY) -m hotspots.bench $(if $(BENCH_QUICK),--quick,--airflow-day) $(if $(BENCH_DAYS),--days $(BENCH_DAYS)) $(if $(BENCH_SCALE),--scale $(BENCH_SCALE)) $(BENCH_ARGS)

bench-quality: deps db mlflow ## model quality: 60-day backtest after 180 days, on every simulator variant (VARIANTS=a,b), one table
	@$(PY) -m hotspots.bench --quality --days 240 --scale $(or $(BENCH_SCALE),0.1) --variants $(or $(VARIANTS),all) $(BENCH_ARGS)

test: deps db airflow-init lint ## install what is missing, lint, and run the whole test suite
	@$(PY) -m pytest -q -p no:cacheprovider $(or $(PYTEST_ARGS),tests)

test-unit: db airflow-init ## fast tests only (DAG parsing needs Airflow's metadata database)
	@$(PY) -m pytest -q -p no:cacheprovider -m "not integration" tests

.PHONY: fuzz
fuzz: deps db airflow-init ## property-based ingest tests with FUZZ_FACTOR (default 20) times the examples of make test, random seeds
	@HYPOTHESIS_PROFILE=fuzz HOTSPOTS_FUZZ_FACTOR=$(or $(FUZZ_FACTOR),20) $(PY) -m pytest -q -p no:cacheprovider \
		--hypothesis-show-statistics -k "not airflow" tests/ingest/test_hostile.py tests/integration/test_ingest_hostile.py

lint: $(PIPELINE_STAMP) db ## ruff (with Airflow rules); sqlfluff on the dbt models (dbt templater, .sqlfluff)
	@$(VENV)/bin/ruff check ml dags tests superset
	@WAREHOUSE=postgres $(VENV)/bin/sqlfluff lint dbt/models --processes 2 --disable-progress-bar

superset: deps warehouse ## provision Superset for WAREHOUSE: views, read-only role, dashboards, roles, RLS, users
	@scripts/superset.sh provision

up: db airflow-init $(SUPERSET_STAMP) ## start local services: PostgreSQL, Airflow UI, MLflow UI, Superset on 127.0.0.1
	@scripts/services.sh start

down: ## stop local services (the Celery workers and Redis of make up-celery too)
	@$(MAKE) --no-print-directory CELERY=1 celery-stop
	@scripts/services.sh stop
	@scripts/pg.sh stop

env: ## print libpq variables for the warehouse (eval the output, then psql)
	@echo "export PGHOST=$(PGHOST) PGPORT=$(PGPORT) PGDATABASE=$(WAREHOUSE) PGUSER=$(PGUSER) PGPASSWORD=$(PGPASSWORD)"

lock: ## re-resolve requirements/pipeline.in into requirements/pipeline.lock
	@rm -rf $(LOCAL)/lockenv && python3 -m venv $(LOCAL)/lockenv && $(LOCAL)/lockenv/bin/pip install -q -r requirements/pipeline.in
	@{ echo "# pip freeze of the pipeline environment resolved from pipeline.in (Python 3.11). Regenerate: make lock"; \
	   $(LOCAL)/lockenv/bin/pip freeze; } > requirements/pipeline.lock && rm -rf $(LOCAL)/lockenv

lock-superset: ## re-resolve requirements/superset.in into requirements/superset.lock
	@rm -rf $(LOCAL)/lockenv-superset && python3 -m venv $(LOCAL)/lockenv-superset && $(LOCAL)/lockenv-superset/bin/pip install -q -r requirements/superset.in
	@{ echo "# pip freeze of the Superset environment resolved from superset.in (Python 3.11). Regenerate: make lock-superset"; \
	   $(LOCAL)/lockenv-superset/bin/pip freeze; } > requirements/superset.lock && rm -rf $(LOCAL)/lockenv-superset

lock-hashes: ## the images' runtime locks with hashes (pipeline-runtime.lock, superset-runtime.lock) at the versions of the two locks
	@$(PY) scripts/lock-hashes.py requirements/pipeline-runtime.in requirements/pipeline.lock requirements/pipeline-runtime.lock
	@$(SUPERSET_VENV)/bin/python scripts/lock-hashes.py requirements/superset-runtime.in requirements/superset.lock requirements/superset-runtime.lock

# The distributed path on this machine: Airflow on the CeleryExecutor (config/celery.env, the settings
# docker-compose.yml passes), Redis on 127.0.0.1:REDIS_PORT and CELERY_WORKERS workers (scripts/celery.sh).
.PHONY: up-celery celery-workers down-celery celery-stop shared-env
CELERY_WORKERS ?= 2
up-celery: ## the services on the CeleryExecutor: Redis, CELERY_WORKERS (2) Celery workers, then make up's (docs/operations.md)
	@$(MAKE) --no-print-directory CELERY=1 celery-workers up

celery-workers: db airflow-init $(SYSTEM_STAMP)
	@[ -n "$(CELERY)" ] || { echo "celery-workers: use make up-celery (CELERY=1)" >&2; exit 2; }
	@scripts/celery.sh start

down-celery: ## stop the Celery workers and Redis (make down stops the other services)
	@$(MAKE) --no-print-directory CELERY=1 celery-stop

celery-stop:
	@scripts/celery.sh stop

shared-env: ## print the shared settings (config/airflow.env; with CELERY=1 config/celery.env) as make exports them
	@env | grep -E '^($(shell sed -n 's/^\([A-Z][A-Z0-9_]*\)=.*/\1/p' $(SHARED_ENV) | paste -sd'|'))=' | sort

.PHONY: exec
exec: ## run CMD with the Makefile's settings (Airflow, PostgreSQL, MLflow; CELERY=1 for the Celery ones): make exec CMD='airflow dags list'
	@[ -n "$(CMD)" ] || { echo "make exec needs CMD='a command'" >&2; exit 2; }
	@$(CMD)

clean-local: down ## delete the local cluster, Airflow home and simulated data (.local)
	rm -rf $(LOCAL)
