# CLV pipeline. Two commands do everything on a fresh Debian/Ubuntu machine:
#   make run    create .venv, install pinned dependencies, load CDNOW, run the DAG once
#   make test   the test suite (what CI runs)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        := $(CURDIR)/.venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
AS_OF_DATE  ?= 1998-07-01
# Empty = the defaults in src/clv/config.py (180 days, 5000, 0.5).
HORIZON     ?=
BUDGET      ?=
CLV_WEIGHT  ?=
SHARED_DATA ?= $(or $(CLV_SHARED_DATA),$(CURDIR)/../shared/data)
AIRFLOW_PORT ?= 8080
MLFLOW_PORT ?= 5000
SPARK_CONNECT_PORT ?= 15002
HOST        ?= 127.0.0.1
# Run-time state (.state/, warehouse/, MLflow artifacts) is the owner's only: folders 0700,
# files 0600. Every recipe line that creates some starts with $(PRIVATE).
CLV_UMASK   ?= 077
PRIVATE     := umask $(CLV_UMASK);
# Airflow's components as `make up` starts them (one process group, .state/airflow.pid).
AIRFLOW_COMPONENTS := $(BIN)/airflow scheduler --skip-serve-logs & $(BIN)/airflow dag-processor & \
  $(BIN)/airflow triggerer --skip-serve-logs & $(BIN)/airflow api-server &

export CLV_HOME := $(CURDIR)
export CLV_UMASK
# airflow standalone starts its components as `airflow ...`: the venv must be on PATH.
export PATH := $(BIN):$(PATH)
export AIRFLOW_HOME := $(CURDIR)/.state/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__API__HOST := $(HOST)
export AIRFLOW__API__PORT := $(AIRFLOW_PORT)
export GX_ANALYTICS_ENABLED := false
# OpenMP threads sleep instead of spinning while they wait (see src/clv/__init__.py).
export OMP_WAIT_POLICY ?= PASSIVE
export MLFLOW_ENABLE_TELEMETRY := false
export DO_NOT_TRACK := true
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: help install java browser run airflow-init load-cdnow load-campaign test lint bench pg up down prod-env promote summary lock clean

help:
	@echo "make run      install, load CDNOW, run the DAG once for AS_OF_DATE=$(AS_OF_DATE)"
	@echo "make run ORDERS=orders.csv [MAP=order_id=OrderNo,...]   the same on your own orders file"
	@echo "make test     run the test suite"
	@echo "make up/down  start/stop the Airflow UI and MLflow UI on $(HOST)"
	@echo "make prod-env; make up PROFILE=prod   production profile: PostgreSQL, LocalExecutor, auth (.env.prod)"
	@echo "make promote MODEL=clv_spend VERSION=2 REASON='...'   move the champion alias (who/when/why recorded)"

install: java $(STAMP)

# Spark 4 needs Java 17+: use it if present, install it with apt where we can, else stop.
java:
	@if java -version 2>&1 | grep -qE 'version "(1[7-9]|2[0-9])'; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing OpenJDK 17 (Spark needs Java 17+) ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; \
	else \
	  echo "error: Spark needs Java 17 or newer; install it (e.g. 'sudo apt-get install openjdk-17-jre-headless') and re-run" >&2; exit 1; \
	fi

# PostgreSQL server + JDBC driver (PostgreSQL warehouse, tests/test_warehouse_pg.py): use them
# if present, install them with apt where we can (Debian: postgresql, libpostgresql-jdbc-java).
CLV_JDBC_JAR ?= /usr/share/java/postgresql.jar
pg:
	@if { ls /usr/lib/postgresql/*/bin/initdb || command -v initdb; } >/dev/null 2>&1 && [ -f $(CLV_JDBC_JAR) ]; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing PostgreSQL and its JDBC driver ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql libpostgresql-jdbc-java >/dev/null; \
	else \
	  echo "error: the PostgreSQL tests need a PostgreSQL server and $(CLV_JDBC_JAR) (e.g. 'sudo apt-get install postgresql libpostgresql-jdbc-java')" >&2; exit 1; \
	fi

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "error: Python 3.11+ is required ($(PYTHON) is $$($(PYTHON) --version))" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned dependencies into .venv (first time: a few minutes) ..."
	$(BIN)/pip install -q --upgrade pip==25.3
	$(BIN)/pip install -q -r requirements.txt -c constraints.txt
	$(BIN)/pip install -q --no-deps -e .
	@# CDNOW ships inside lifetimes' wheel; install it without its (old) dependencies, never import it.
	$(BIN)/pip install -q --no-deps lifetimes==0.11.3
	@touch $(STAMP)

airflow-init: install
	@$(PRIVATE) mkdir -p $(AIRFLOW_HOME) && chmod 700 .state
	@$(PRIVATE) $(BIN)/airflow db migrate >/dev/null
	@$(PRIVATE) $(BIN)/python -c 'import subprocess, sys; from clv.config import SPARK_POOL_ARGS; \
	  subprocess.run([sys.argv[1], *SPARK_POOL_ARGS], check=True)' $(BIN)/airflow >/dev/null

load-cdnow: install
	$(PRIVATE) $(BIN)/clv import-cdnow

# The Hillstrom e-mail experiment as this shop's campaign (placed at 1998-03-01, before
# CDNOW's as-of date) so the allocation uses measured uplift for the e-mails.
load-campaign: install
	@f=$(SHARED_DATA)/hillstrom/hillstrom.csv.gz; \
	if [ -f $$f ]; then $(BIN)/clv import-campaign --hillstrom $$f --sent-date 1998-03-01 >/dev/null && \
	  echo "loaded the Hillstrom campaign into raw.campaign_responses"; \
	else echo "no $$f: the allocation uses prior uplifts (see README)"; fi

# Own data: make run ORDERS=path/orders.csv [MAP=order_id=OrderNo,amount=Total] [FORMAT=csv]
# [TS_FORMAT='yyyy-MM-dd HH:mm'] [AS_OF_DATE=...]; without AS_OF_DATE the as-of date is the
# day after the file's newest order (AS_OF_DATE's CDNOW default applies only to CDNOW).
USER_AS_OF := $(filter command line environment environment override,$(origin AS_OF_DATE))
# make run OLIST=../shared/data/olist_sample: an Olist export (lines, orders, reviews, customers).
RUN_DATA_ARGS = $(if $(OLIST),--olist '$(abspath $(OLIST))' $(if $(USER_AS_OF),--as-of-date $(AS_OF_DATE)),\
  $(if $(ORDERS),--orders '$(abspath $(ORDERS))' $(if $(MAP),--map '$(MAP)') \
  $(if $(FORMAT),--format $(FORMAT)) $(if $(TS_FORMAT),--timestamp-format '$(TS_FORMAT)') \
  $(if $(USER_AS_OF),--as-of-date $(AS_OF_DATE)),--as-of-date $(AS_OF_DATE)))

# One process (clv demo): the Airflow DB, both loads and the DAG run (airflow dags test runs
# every task in-process) share one Spark JVM and one Great Expectations import.
run: install
	@$(PRIVATE) mkdir -p $(AIRFLOW_HOME) && chmod 700 .state
	@$(PRIVATE) start=$$(date +%s); \
	CLV_SHARED_DATA=$(SHARED_DATA) $(BIN)/clv demo $(RUN_DATA_ARGS) $(if $(HORIZON),--horizon-days $(HORIZON)) \
	  $(if $(BUDGET),--budget $(BUDGET)) $(if $(CLV_WEIGHT),--clv-weight $(CLV_WEIGHT)) \
	  --log .state/last_run.log || exit 1; \
	echo "make run finished in $$(( $$(date +%s) - start )) s (DAG log: .state/last_run.log)"
	@echo
	@echo "Query the results:"
	@echo "  $(BIN)/python -c \"import duckdb; print(duckdb.connect('warehouse/warehouse.duckdb', read_only=True).sql('select * from marts.customer_scores limit 5'))\""
	@echo "  duckdb warehouse/warehouse.duckdb \"select segment, count(*) from marts.customer_segments group by 1\"   # with the duckdb CLI"
	@echo "Open the UIs: make up"

# Headless Chromium for the browser test (tests/test_browser.py): Debian's chromium and
# chromium-driver, installed with apt where we can.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium and chromium-driver (the browser test) ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
	  echo "error: the browser test needs chromium and chromedriver (e.g. 'sudo apt-get install chromium chromium-driver')" >&2; exit 1; \
	fi

test: install pg browser
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

# The whole DAG at 1M and 10M synthetic orders as `make up` runs it (each task in its own
# process, dependencies and the Spark pool honoured), then the Spark feature job vs DuckDB
# and pandas (BENCH_LARGE=1 adds 100M). Figures: bench/results/*.json (docs/benchmarks.md).
bench: install
	$(BIN)/python bench/bench_scale.py
	$(BIN)/python bench/bench_features.py

summary: install
	$(BIN)/clv summary --as-of-date $(AS_OF_DATE)

promote: install
	@test -n "$(MODEL)" -a -n "$(VERSION)" -a -n "$(REASON)" || { echo "usage: make promote MODEL=clv_spend VERSION=3 REASON='why' [ALIAS=champion] [BY=who]" >&2; exit 2; }
	$(BIN)/clv promote --model $(MODEL) --version $(VERSION) --alias $(or $(ALIAS),champion) --reason "$(REASON)" $(if $(BY),--by "$(BY)")

# PROFILE=prod: PostgreSQL metadata/tracking/warehouse, LocalExecutor, Airflow users and MLflow
# basic auth, secrets from the git-ignored .env.prod (make prod-env writes it once).
PROFILE     ?= dev
PROD_ENV    := $(CURDIR)/.env.prod
export HOST AIRFLOW_PORT MLFLOW_PORT

prod-env: install
	@$(BIN)/python -m clv.ops.prod env $(if $(PG_PORT),--pg-port $(PG_PORT))

up: $(if $(filter prod,$(PROFILE)),install pg,airflow-init)
ifeq ($(PROFILE),prod)
	@test -f $(PROD_ENV) || $(MAKE) --no-print-directory prod-env
	@$(BIN)/python -m clv.ops.prod up
else
	@$(PRIVATE) mkdir -p .state/mlflow/artifacts && chmod 700 .state
	@$(PRIVATE) if [ -f .state/mlflow.pid ] && kill -0 $$(cat .state/mlflow.pid) 2>/dev/null; then echo "MLflow already running"; else \
	  setsid nohup $(BIN)/python mlflow/server.py --host $(HOST) --port $(MLFLOW_PORT) \
	    > .state/mlflow.log 2>&1 & echo $$! > .state/mlflow.pid; fi
	@# One long-lived Spark JVM that every task attaches to (CLV_SPARK_REMOTE): a task pays
	@# ~1 s to connect instead of ~9 s to start its own driver. SPARK_CONNECT_PORT= disables it.
	@$(PRIVATE) if [ -n "$(SPARK_CONNECT_PORT)" ]; then \
	  if [ -f .state/spark-connect.pid ] && kill -0 $$(cat .state/spark-connect.pid) 2>/dev/null; then echo "Spark Connect already running"; else \
	  setsid nohup $(BIN)/clv spark-connect-server --port $(SPARK_CONNECT_PORT) > .state/spark-connect.log 2>&1 & echo $$! > .state/spark-connect.pid; \
	  for i in $$(seq 1 90); do (echo > /dev/tcp/127.0.0.1/$(SPARK_CONNECT_PORT)) 2>/dev/null && break; sleep 1; done; fi; fi
	@# What `airflow standalone` starts, less the task-log servers: scheduler and triggerer
	@# would serve logs on 0.0.0.0:8793/8794 (Airflow has no host setting for them); with
	@# LocalExecutor the api-server reads task logs from the local log folder instead.
	@$(PRIVATE) if [ -f .state/airflow.pid ] && kill -0 $$(cat .state/airflow.pid) 2>/dev/null; then echo "Airflow already running"; else \
	  $(if $(SPARK_CONNECT_PORT),CLV_SPARK_REMOTE=sc://127.0.0.1:$(SPARK_CONNECT_PORT)) \
	  setsid nohup bash -c '$(AIRFLOW_COMPONENTS) wait' > .state/airflow.log 2>&1 & echo $$! > .state/airflow.pid; fi
	@echo "waiting for the UIs ..."; for i in $$(seq 1 90); do \
	  curl -sf -o /dev/null http://$(HOST):$(AIRFLOW_PORT)/api/v2/monitor/health && curl -sf -o /dev/null http://$(HOST):$(MLFLOW_PORT)/health && break; sleep 2; done
	@echo "Airflow UI: http://$(HOST):$(AIRFLOW_PORT)   (log: .state/airflow.log)"
	@echo "  login: $$(cat $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated 2>/dev/null || echo 'see .state/airflow.log')"
	@echo "MLflow UI:  http://$(HOST):$(MLFLOW_PORT)   (log: .state/mlflow.log)"
	@$(if $(SPARK_CONNECT_PORT),echo "Spark:      sc://127.0.0.1:$(SPARK_CONNECT_PORT) (one JVM for all tasks; log: .state/spark-connect.log)")
endif

down:
ifeq ($(PROFILE),prod)
	@$(BIN)/python -m clv.ops.prod down
else
	@# Each service's process group gets SIGTERM and is waited for (SIGKILL after 30 s),
	@# Airflow first (its tasks use MLflow and Spark Connect): when this returns, none runs.
	@$(BIN)/python -m clv.ops.prod stop --state .state airflow mlflow spark-connect
endif

# Re-pin the full environment after changing requirements.txt.
lock: install
	@{ echo "# Full pinned environment (pip freeze of a working install). Used as -c with requirements.txt."; \
	   echo "# Regenerate with \`make lock\` after changing requirements.txt."; \
	   $(BIN)/pip freeze | grep -v -E '^(-e|clv|lifetimes)'; } > constraints.txt

clean:
	rm -rf .state warehouse
