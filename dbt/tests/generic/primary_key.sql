{#-
  Generic test: `columns` are the key (the grain) of the model: no row has a null in any of
  them and no two rows share their values. Unique and not_null in one scan (one test per
  model instead of one per column: the daily build runs every test over whole tables).
-#}
{% test primary_key(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
    {%- for column in columns %} or {{ column }} is null{% endfor %}
{% endtest %}
