"""The dbt project keeps its shape (dbt's guide to project structure; docs/features.md, Models):

- every model is documented in its folder's YAML and has a test of its key: dbt's `unique`
  and `not_null` on one column, or the generic `primary_key` on several;
- staging models live in `staging/<source>/stg_<source>__<entity>s.sql` and read only their
  own source, declared in that folder's `_<source>__sources.yml`;
- intermediate models are `int_*`, marts `fct_*` or `dim_*`, and only marts are read from
  outside dbt by forecasting (hotspots.forecast.data, store).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.conftest import ROOT

MODELS = ROOT / "dbt" / "models"


def _model_files() -> dict[str, Path]:
    return {p.stem: p for p in MODELS.rglob("*.sql")}


def _documented() -> dict[str, tuple[Path, dict]]:
    out = {}
    for p in MODELS.rglob("*.yml"):
        for m in (yaml.safe_load(p.read_text()) or {}).get("models", []) or []:
            out[m["name"]] = (p, m)
    return out


def _key_tests(model: dict) -> list[str]:
    keys = []
    for t in model.get("data_tests", []) or []:
        if isinstance(t, dict) and "primary_key" in t:
            keys.append("+".join((t["primary_key"].get("arguments") or t["primary_key"])["columns"]))
    for c in model.get("columns", []) or []:
        tests = c.get("data_tests", []) or []
        if "unique" in tests and "not_null" in tests:
            keys.append(c["name"])
    return keys


def test_every_model_is_documented_beside_it_with_a_key_test():
    files, documented = _model_files(), _documented()
    assert set(files) == set(documented), (set(files) ^ set(documented))
    for name, path in files.items():
        yml, model = documented[name]
        assert yml.parent in (path.parent, path.parent.parent), (name, yml)
        assert model.get("description"), f"{name} has no description"
        assert _key_tests(model), f"{name} has no unique + not_null test on its key"


def test_generic_key_test_checks_nulls_and_duplicates_in_one_query():
    sql = (ROOT / "dbt" / "tests" / "generic" / "primary_key.sql").read_text()
    assert "having count(*) > 1" in sql and "is null" in sql


def test_staging_follows_sources():
    for path in (MODELS / "staging").rglob("*.sql"):
        source = path.parent.name
        assert re.fullmatch(rf"stg_{source}__[a-z0-9_]+s", path.stem), path
        declared = yaml.safe_load((path.parent / f"_{source}__sources.yml").read_text())["sources"]
        assert [s["name"] for s in declared] == [source]
        used = set(re.findall(r"source\('(\w+)',", path.read_text()))
        assert used <= {source, "ref"} and source in used, (path, used)  # a look-up of the directory: ref
    for yml in (MODELS / "staging").rglob("_*__sources.yml"):
        (source,) = [s["name"] for s in yaml.safe_load(yml.read_text())["sources"]]
        assert yml.name == f"_{source}__sources.yml" and yml.parent.name == source


def test_layers_are_named_and_forecasting_reads_marts_only():
    for path in (MODELS / "intermediate").rglob("*.sql"):
        assert path.stem.startswith("int_"), path
    for path in (MODELS / "marts").rglob("*.sql"):
        assert path.stem.startswith(("fct_", "dim_")), path
    for module in ("data.py", "store.py", "backtest.py", "train.py", "score.py"):
        text = (ROOT / "ml" / "hotspots" / "forecast" / module).read_text()
        read = set(re.findall(r"\b(intermediate|staging|ref|raw)\.[a-z_0-9]+\b", text))
        assert not read, (module, read)
