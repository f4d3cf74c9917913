"""Rules written in more than one place agree, so that a change to one that misses another fails here.

- the code sets (complaint category and status, transfer status, withdrawal channel):
  hotspots.contract, the Great Expectations suites (expectations/*.json), the dbt staging
  tests (accepted_values) and the contract itself (../shared/contract/EXTRACTS.md);
- the keys of the raw tables: hotspots.contract and the dbt sources' key tests;
- dbt's uses of the code sets: the category groups of the complaint pressure cover every
  category once, the fixed-terminal channels are channels;
- the holiday calendar: dbt's seed and the simulator's calendar differ only by the days
  written down in docs/features.md (Calendar);
- the minimum history to train is read from config/forecast.yml: no module or DAG writes it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hotspots import contract
from hotspots.simulate import rhythm
from tests.conftest import ROOT, SHARED

DBT = ROOT / "dbt"

# (entity, column) -> the code set hotspots.contract holds for it.
CODE_SETS = {
    ("complaints", "category"): contract.CATEGORIES,
    ("complaints", "status"): contract.COMPLAINT_STATUSES,
    ("transactions", "status"): contract.TXN_STATUSES,
    ("withdrawals", "channel"): contract.CHANNELS,
}


def _yaml_files(folder: Path) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted(folder.rglob("*.yml"))]


def _dbt_nodes(kind: str) -> dict[str, dict]:
    """Every model (kind="models") or source table (kind="sources", named source.table) in dbt/models."""
    out = {}
    for doc in _yaml_files(DBT / "models"):
        for item in (doc or {}).get(kind, []) or []:
            if kind == "sources":
                for t in item.get("tables", []):
                    out[f"{item['name']}.{t['name']}"] = t
            else:
                out[item["name"]] = item
    return out


def _column_tests(node: dict, column: str) -> list:
    for c in node.get("columns", []) or []:
        if c["name"] == column:
            return c.get("data_tests", []) or []
    return []


def _accepted_values(node: dict, column: str) -> tuple[str, ...] | None:
    for t in _column_tests(node, column):
        if isinstance(t, dict) and "accepted_values" in t:
            spec = t["accepted_values"]
            return tuple((spec.get("arguments") or spec)["values"])
    return None


def _suite_value_set(entity: str, column: str) -> tuple[str, ...] | None:
    suite = json.loads((ROOT / "expectations" / f"extracts_v1_{entity}.json").read_text())
    for e in suite["expectations"]:
        kw = e.get("kwargs", {})
        if e.get("type") == "expect_column_values_to_be_in_set" and kw.get("column") == column:
            return tuple(kw["value_set"])
    return None


def _extracts_md_codes(entity: str, column: str) -> tuple[str, ...] | None:
    text = (SHARED / "contract" / "EXTRACTS.md").read_text()
    section = re.search(rf"^## {entity}\n(.*?)(?=^## )", text, re.S | re.M)
    if section is None:
        return None
    row = re.search(rf"^\| {column} \| code \|(.*)\|$", section.group(1), re.M)
    return tuple(re.findall(r"`([A-Z_]+)`", row.group(1))) if row else None


@pytest.mark.parametrize(("entity", "column"), sorted(CODE_SETS))
def test_code_sets_agree_everywhere(entity, column):
    expected = CODE_SETS[(entity, column)]
    assert len(set(expected)) == len(expected)
    assert _suite_value_set(entity, column) == expected, "expectations/*.json"
    assert _accepted_values(_dbt_nodes("models")[f"stg_raw__{entity}"], column) == expected, \
        f"accepted_values of {column} in dbt/models/staging/raw/_raw__models.yml"
    if (SHARED / "contract" / "EXTRACTS.md").exists():
        assert _extracts_md_codes(entity, column) == expected, "../shared/contract/EXTRACTS.md"


def test_every_code_set_of_the_suites_is_in_the_contract_module():
    """A code set added to a suite (or to dbt) without hotspots.contract fails here."""
    sets = {}
    for entity in contract.ENTITIES:
        suite = json.loads((ROOT / "expectations" / f"extracts_v1_{entity}.json").read_text())
        for e in suite["expectations"]:
            if e.get("type") == "expect_column_values_to_be_in_set":
                sets[(entity, e["kwargs"]["column"])] = tuple(e["kwargs"]["value_set"])
    models = _dbt_nodes("models")
    for entity in contract.ENTITIES:
        for c in models[f"stg_raw__{entity}"].get("columns", []):
            if _accepted_values(models[f"stg_raw__{entity}"], c["name"]) is not None:
                sets.setdefault((entity, c["name"]), None)
    assert set(sets) == set(CODE_SETS)


def test_raw_table_keys_agree_with_the_dbt_sources():
    sources = _dbt_nodes("sources")
    for entity in contract.ENTITIES:
        (key,) = contract.TABLE_KEYS[entity]
        tests = _column_tests(sources[f"raw.{entity}"], key)
        assert "unique" in tests and "not_null" in tests, entity
        assert key in contract.COLUMNS[entity]


def test_dbt_uses_of_the_code_sets_are_code_sets():
    sql = (DBT / "models" / "intermediate" / "money_trail" / "int_cell_pressure_daily.sql").read_text()
    # Counted per (account, arrival date) in account_days, each group shared out as pressure_<group>.
    groups = re.findall(r"filter \(\s*where category in \(([^)]*)\)\s*\)::double precision as (\w+)", sql)
    assert len(groups) == 4, groups
    for _, name in groups:
        assert re.search(rf"sum\({name} \* cell_share\) filter \(where {name} > 0\) as pressure_{name}\b", sql), name
    used = [c for codes, _ in groups for c in re.findall(r"'([A-Z_]+)'", codes)]
    assert sorted(used) == sorted(contract.CATEGORIES), "each category in exactly one pressure group"
    fixed = yaml.safe_load((DBT / "dbt_project.yml").read_text())["vars"]["fixed_terminal_channels"]
    assert set(fixed) < set(contract.CHANNELS)


# The days on which dbt's seed and the simulator's calendar differ, as docs/features.md
# (Calendar) writes them down: Good Friday is a gazetted holiday the simulator does not
# model; the simulator also slows the day after Diwali, which is not gazetted.
SEED_ONLY = {"2024-03-29", "2025-04-18", "2026-04-03", "2027-03-26"}
SIMULATOR_ONLY = {"2024-11-01", "2025-10-21", "2026-11-09", "2027-10-30"}


def test_holiday_seed_and_simulator_calendar_differ_only_as_written_down():
    seed = pd.read_csv(DBT / "seeds" / "holidays.csv", dtype=str)
    seed_days = set(seed["holiday_date"])
    years = sorted({d[:4] for d in seed_days})
    assert years == ["2024", "2025", "2026", "2027"]
    first, last = dt.date(int(years[0]), 1, 1), dt.date(int(years[-1]), 12, 31)
    sim_days = {str(first + dt.timedelta(days=i)) for i in range((last - first).days + 1)
                if rhythm.is_holiday(first + dt.timedelta(days=i))}
    assert seed_days - sim_days == SEED_ONLY
    assert sim_days - seed_days == SIMULATOR_ONLY
    doc = (ROOT / "docs" / "features.md").read_text()
    for d in SEED_ONLY | SIMULATOR_ONLY:
        assert d in doc, f"{d} is not written down in docs/features.md"


def test_minimum_history_to_train_comes_from_the_config():
    from hotspots import settings

    assert int(settings.forecast_config()["train"]["min_history_days"]) == 28
    for path in [ROOT / "ml" / "hotspots" / "forecast" / "train.py", ROOT / "ml" / "hotspots" / "forecast" / "backtest.py"]:
        text = path.read_text()
        assert "min_history_days" in text and not re.search(r"days=28\b|\b28 days", text), path
    # The training DAG asks hotspots.orchestration (which reads the config); it writes no figure of its own.
    dag = (ROOT / "dags" / "train_model.py").read_text()
    assert not re.search(r"\b28\b", dag)
