"""A thin client of Superset's REST API for the tests: login, CSRF, chart data, assets export."""

from __future__ import annotations

import requests


class Superset:
    def __init__(self, base: str, username: str, password: str):
        self.base = base.rstrip("/")
        self.s = requests.Session()
        r = self.s.post(f"{self.base}/api/v1/security/login",
                        json={"username": username, "password": password, "provider": "db", "refresh": False},
                        timeout=60)
        r.raise_for_status()
        self.s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        self.s.headers["Referer"] = self.base
        r = self.s.get(f"{self.base}/api/v1/security/csrf_token/", timeout=60)
        r.raise_for_status()
        self.s.headers["X-CSRFToken"] = r.json()["result"]

    def get(self, path: str, **kw):
        return self.s.get(self.base + path, timeout=120, **kw)

    def post(self, path: str, **kw):
        return self.s.post(self.base + path, timeout=120, **kw)

    def dataset_id(self, name: str) -> int:
        import json

        q = json.dumps({"filters": [{"col": "table_name", "opr": "eq", "value": name}]})
        r = self.get("/api/v1/dataset/", params={"q": q.replace('"', "'").replace("'", "'")})
        r.raise_for_status()
        ids = [d["id"] for d in r.json()["result"] if d["table_name"] == name]
        assert len(ids) == 1, f"dataset {name}: {ids}"
        return ids[0]

    def chart_data(self, dataset_id: int, columns: list[str] | None = None, metrics: list | None = None,
                   filters: list[dict] | None = None, row_limit: int = 100000, result_type: str = "full"):
        """POST /api/v1/chart/data; returns the response (status and JSON for the caller to judge)."""
        body = {"datasource": {"id": dataset_id, "type": "table"}, "force": True, "result_type": result_type,
                "result_format": "json",
                "queries": [{"columns": columns or [], "metrics": metrics or [], "filters": filters or [],
                             "row_limit": row_limit, "orderby": [], "extras": {"having": "", "where": ""}}]}
        return self.post("/api/v1/chart/data", json=body)

    def count(self, dataset_id: int, filters: list[dict] | None = None) -> int | None:
        """COUNT(*) of a dataset as this user sees it; None when refused."""
        r = self.chart_data(dataset_id, metrics=["count"], filters=filters)
        if r.status_code in (401, 403, 404):
            return None
        r.raise_for_status()
        data = r.json()["result"][0]["data"]
        return int(data[0]["count"]) if data else 0
