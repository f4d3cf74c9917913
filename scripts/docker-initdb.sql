-- First start of the postgis container: the metadata databases beside the warehouse.
create database airflow;
create database mlflow;
