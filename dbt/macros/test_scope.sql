{#
  Which rows a data test reads. By default every row (with the test's own `where`, as dbt does).
  With `--vars '{test_scope: built}'` (the daily path in dags/build_features.py), only the rows
  the daily build can have changed, so the tests that gate the forecast cost the day's rows and
  not the years of history behind them:
  - a relation with built_at (the incremental models: delete+insert, every row a build writes
    carries that build's now(); each has an index on built_at): the rows of its latest build. A
    duplicate key or a broken reference can only come from rows a build wrote: the rows it
    replaced are gone.
  - else one with latest_extract_date (staging's raw views) or extract_date (raw.*, the tables
    and views keyed by arrival): the rows of the deliveries loaded since the features were last
    built (the extract ledger's finished_at after fct_cell_daily_features' latest built_at; the
    models read the same). raw.*.extract_date is indexed: the scope costs the day's rows.
  - else (reference tables, the seed, the ledger): every row.
  Nothing to scope by (no features built yet, no ledger): every row. The full suite runs after
  publish (task dbt_features_audit), off the forecast's path.
  Overrides dbt's get_where_subquery (macros/materializations/tests/where_subquery.sql), which
  every generic test applies to its model or source.
#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [config.get('where', ''), built_rows(relation)] | select | list -%}
    {%- if conditions -%}
        {%- set filtered -%}
            (select * from {{ relation }} where ({{ conditions | join(') and (') }})) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{% macro built_rows(relation) -%}
    {%- if not execute or var('test_scope', 'all') != 'built' -%}{%- do return('') -%}{%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
    {%- if 'built_at' in columns -%}
        {%- set latest = latest_built_at(relation) -%}
        {%- do return("built_at = timestamptz '" ~ latest ~ "'" if latest else '') -%}
    {%- endif -%}
    {%- set column = 'latest_extract_date' if 'latest_extract_date' in columns
        else ('extract_date' if 'extract_date' in columns else none) -%}
    {%- if column is none -%}{%- do return('') -%}{%- endif -%}
    {%- set since = features_built_since() -%}
    {%- do return(column ~ " >= date '" ~ since ~ "'" if since else '') -%}
{%- endmacro %}

{#- The first extract date of the deliveries loaded since the features were last built, as
    text ('infinity' when none was); none when there are no features or no ledger yet (one
    small query per scoped test). Looked up in the graph, not through ref() or source(): a test calling them
    would depend on the relation. -#}
{% macro features_built_since() -%}
    {%- set features_node = graph.nodes.get('model.' ~ project_name ~ '.fct_cell_daily_features') -%}
    {%- set ledger_node = graph.sources.get('source.' ~ project_name ~ '.ingest.extract_ledger') -%}
    {%- if features_node is none or ledger_node is none -%}{%- do return(none) -%}{%- endif -%}
    {%- set features = adapter.get_relation(features_node.database, features_node.schema, features_node.alias) -%}
    {%- set ledger = adapter.get_relation(ledger_node.database, ledger_node.schema, ledger_node.identifier) -%}
    {%- if features is none or ledger is none -%}{%- do return(none) -%}{%- endif -%}
    {%- set query -%}
        select case when f.built is null then null
                    else coalesce((select min(extract_date) from {{ ledger }}
                                   where status = 'loaded' and finished_at > f.built), 'infinity'::date)::text end
        from (select max(built_at) as built from {{ features }}) f
    {%- endset -%}
    {%- do return(run_query(query).columns[0].values()[0]) -%}
{%- endmacro %}
