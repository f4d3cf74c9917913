{{ config(materialized='view') }}
-- When each complaint arrived and its category. Grain: ack_no.
select ack_no, category, extract_date
from {{ ref('stg_raw__complaints') }}
