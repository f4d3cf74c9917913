"""Airflow Assets that connect the DAGs (data-aware scheduling)."""

from __future__ import annotations

from airflow.sdk import Asset

RAW_EXTRACTS = Asset(name="raw_extracts", uri="hotspots://warehouse/raw")
CELL_FEATURES = Asset(name="cell_features", uri="hotspots://warehouse/marts/fct_cell_daily_features")
MODEL_REGISTRY = Asset(name="model_registry", uri="hotspots://mlflow/registered-models")
HOTSPOT_FORECAST = Asset(name="hotspot_forecast", uri="hotspots://warehouse/marts/hotspot_forecast")
