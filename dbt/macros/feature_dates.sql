{#
  The dates an incremental model builds, as SQL expressions.
  Features for day D may use only extracts dated before D, so feature models build
  feature dates (offset 1: from the first extract date + 1 to the last + 1); models
  keyed by arrival (offset 0) build extract dates.
  Full build: the whole range. Incremental: from the day after the last built one,
  or earlier when a delivery loaded since the last build is dated before that (a
  late or corrected extract changes every date after it).
#}
{% macro build_date_start(date_column='feature_date', offset=1, requires=[]) -%}
    {%- set ledger = source('ingest', 'extract_ledger') -%}
    {%- if is_incremental() and this is string -%}
    {#- A unit test of the incremental run: `this` is its fixture of the built table (`input: this`). -#}
    {%- set current = true -%}
    {%- else -%}
    {#- A table built by an older version of the model (no built_at, or without a column
        listed in `requires`: the model's newest ones) is rebuilt whole, so that no old row
        is left with a new column empty. -#}
    {%- set existing = adapter.get_columns_in_relation(this) | map(attribute='name') | list
        if is_incremental() else [] -%}
    {%- set current = ('built_at' in existing) and (requires | reject('in', existing) | list | length == 0) -%}
    {%- endif -%}
    {%- if is_incremental() and current -%}
    {%- set expr -%}
    (select coalesce(least(
        (select max({{ date_column }}) + 1 from {{ this }}),
        (select min(extract_date) + {{ offset }} from {{ ledger }}
         where status = 'loaded' and finished_at > (select max(built_at) from {{ this }}))
     ), (select min(extract_date) + {{ offset }} from {{ ledger }} where status = 'loaded')))
    {%- endset -%}
    {%- else -%}
    {%- set expr -%}
    (select min(extract_date) + {{ offset }} from {{ ledger }} where status = 'loaded')
    {%- endset -%}
    {%- endif -%}
    {{ date_bound(expr) }}
{%- endmacro %}

{% macro build_date_end(offset=1) -%}
    {%- set expr -%}
    (select max(extract_date) + {{ offset }} from {{ source('ingest', 'extract_ledger') }} where status = 'loaded')
    {%- endset -%}
    {{ date_bound(expr) }}
{%- endmacro %}

{#
  A date bound (a scalar subquery on the extract ledger) as a literal, read just before the
  model runs: the planner then knows how many rows a build reads. Given the subquery, it cannot
  see its value and guessed a hundredth of a full build's rows (17,524 of 3.5 M transfers in
  int_cell_pressure_daily over 180 national days: an index scan and hashes sized for the guess).
  The subquery itself where nothing can be read first: while parsing, in unit tests (their
  ledger is a fixture) and before the ledger exists (linting a new warehouse).
#}
{% macro date_bound(expr) -%}
    {%- set ledger = source('ingest', 'extract_ledger') -%}
    {%- if execute and model.resource_type == 'model' and load_relation(ledger) is not none -%}
        {#- As text (agate may read a date back as a date-time): its first ten characters, YYYY-MM-DD. -#}
        {%- set value = run_query('select (' ~ expr ~ ')::text').columns[0].values()[0] -%}
        {%- if value is none -%}null::date{%- else -%}date '{{ (value | string)[:10] }}'{%- endif -%}
    {%- else -%}
        {{ expr }}
    {%- endif -%}
{%- endmacro %}

{#
  The extract dates an arrival-keyed incremental model counts again: those of the rows of
  `upstream` (an incremental model with built_at, indexed) built since this model's own latest
  build, as a subquery (every date when this model has no built_at yet). This model's latest
  built_at is read first, as a literal: the model's pre-hook (which deletes these dates) and its
  body then select the same dates.
#}
{% macro rebuilt_extract_dates(upstream) -%}
    {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list if execute else [] -%}
    {#- A table built before it had built_at: every date. -#}
    {%- set built = latest_built_at(this) if 'built_at' in columns else none -%}
    select distinct extract_date from {{ upstream }}
    {%- if built %} where built_at > timestamptz '{{ built }}'{% endif %}
{%- endmacro %}

{#- A relation's latest built_at as text (none when it has no rows), read before the query that
    uses it: as a literal the planner sees how few rows carry it (built_at is indexed). -#}
{% macro latest_built_at(relation) -%}
    {%- do return(run_query('select max(built_at)::text from ' ~ relation).columns[0].values()[0]) -%}
{%- endmacro %}
