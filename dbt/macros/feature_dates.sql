{#
  The feature dates a model builds. A feature for day D may use only extracts dated
  before D (they had arrived when the forecast for D was issued).
  Full build: every day from the first extract date + 1 to the last + 1.
  Incremental: from the day after the last built one, or earlier when a delivery
  loaded since the last build is dated before that (a late or corrected extract
  changes every feature date after it).
#}
{% macro feature_date_start() -%}
    {%- set ledger = source('ingest', 'extract_ledger') -%}
    {%- if is_incremental() -%}
    (select coalesce(least(
        (select max(feature_date) + 1 from {{ this }}),
        (select min(extract_date) + 1 from {{ ledger }}
         where status = 'loaded' and finished_at > (select max(built_at) from {{ this }}))
     ), (select min(extract_date) + 1 from {{ ledger }} where status = 'loaded')))
    {%- else -%}
    (select min(extract_date) + 1 from {{ ledger }} where status = 'loaded')
    {%- endif -%}
{%- endmacro %}

{% macro feature_date_end() -%}
    (select max(extract_date) + 1 from {{ source('ingest', 'extract_ledger') }} where status = 'loaded')
{%- endmacro %}
