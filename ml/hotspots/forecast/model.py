"""The hotspot model: per horizon, a LightGBM Poisson model of the expected number of
fraud-linked withdrawals in a cell's window, and a LightGBM binary model of P(any).

Trained at an origin O on feature rows before O, with labels as they were known at O
(extracts dated before O, windows that had settled). Zero-label rows may be sampled
down (``negative_rate``) with weights that keep the loss unbiased. Saved as plain
LightGBM text models plus a JSON card, and wrapped as an MLflow pyfunc for the registry.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from hotspots.forecast import data

# LightGBM settings that change how a model is trained, not what it learns (with
# ``deterministic: true`` one thread and two give the same trees): left out of the recipe the gate
# compares, and taken from the current configuration when a champion is refitted.
RUNTIME_PARAMS = ("num_threads", "verbose")


def runtime_params(cfg: dict) -> dict:
    return {k: v for k, v in cfg["train"]["lightgbm"].items() if k in RUNTIME_PARAMS}


def fit_workers(cfg: dict) -> int:
    """How many boosters train at once (config/forecast.yml train.fit_workers), each with
    lightgbm.num_threads threads; like those, not part of the recipe."""
    n = cfg["train"].get("fit_workers", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"config/forecast.yml: train.fit_workers must be a whole number >= 1, not {n!r}")
    return n


def train_boosters(params: dict, jobs: dict[str, tuple], rounds: int, workers: int = 1) -> dict[str, lgb.Booster]:
    """One booster per job (name -> (objective, x, y, weight)), ``workers`` at a time. LightGBM
    releases the GIL while it builds a dataset and boosts, so threads use the cores; with
    ``deterministic`` each booster's trees do not depend on what else runs. Returned in the
    jobs' order."""
    def one(job):
        objective, x, y, w = job
        return lgb.train({**params, "objective": objective}, lgb.Dataset(x, y, weight=w), rounds)

    if workers <= 1 or len(jobs) <= 1:
        return {name: one(job) for name, job in jobs.items()}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lightgbm") as pool:
        futures = {name: pool.submit(one, job) for name, job in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


@dataclass
class HotspotModel:
    features: list[str]
    params: dict
    rounds: int = 300
    horizons: tuple[int, ...] = (1, 7)
    negative_rate: float = 1.0
    history_days: int = 365
    settle_quantile: float = 0.95
    boosters: dict[str, lgb.Booster] = field(default_factory=dict)
    card: dict = field(default_factory=dict)
    workers: int = 1  # boosters trained at once (train.fit_workers): how, not what; not in the recipe

    def recipe(self) -> dict:
        """What defines how this model is made (not what it learned): compared by the gate."""
        params = {k: v for k, v in self.params.items() if k not in RUNTIME_PARAMS}
        return {"features": list(self.features), "params": params, "rounds": self.rounds,
                "horizons": list(self.horizons), "negative_rate": self.negative_rate,
                "history_days": self.history_days, "settle_quantile": self.settle_quantile}

    def clone(self, runtime: dict | None = None, workers: int | None = None) -> HotspotModel:
        """An unfitted model of the same recipe, trained with `runtime` (RUNTIME_PARAMS) and
        `workers` when given."""
        r = self.recipe()
        params = {**r["params"], **{k: v for k, v in self.params.items() if k in RUNTIME_PARAMS}, **(runtime or {})}
        return HotspotModel(features=r["features"], params=params, rounds=r["rounds"],
                            horizons=tuple(r["horizons"]), negative_rate=r["negative_rate"],
                            history_days=r["history_days"], settle_quantile=r["settle_quantile"],
                            workers=self.workers if workers is None else workers)

    # --- training -------------------------------------------------------------------
    def fit(self, rows: pd.DataFrame, arrived: pd.DataFrame, origin, settle: int | None = None) -> HotspotModel:
        """Fit every horizon at ``origin`` from feature rows dated before it."""
        origin = pd.Timestamp(origin)
        known = arrived[arrived["extract_date"] < origin]
        settle = data.settle_days(known, self.settle_quantile) if settle is None else settle
        past = rows[(rows["feature_date"] < origin)
                    & (rows["feature_date"] >= origin - pd.Timedelta(days=self.history_days))]
        daily = data.daily_counts(known)
        self.card = {"origin": str(origin.date()), "settle_days": settle, "features": self.features,
                     "horizons": list(self.horizons), "negative_rate": self.negative_rate, "train": {}}
        jobs = {}  # per horizon: the expected count (Poisson) and P(any) (binary), on the same rows
        for h in self.horizons:
            train = past[data.trainable(past, h, origin, settle)]
            y = data.window_sums(train, daily, h)
            if len(train) == 0 or y.sum() == 0:
                raise ValueError(f"no settled labels to train horizon {h} at origin {origin.date()}")
            x, y, w = self._sample(train, y, seed=h)
            jobs[f"mu_{h}"] = ("poisson", x, y, w)
            jobs[f"p_{h}"] = ("binary", x, (y > 0).astype(float), w)
            self.card["train"][str(h)] = {
                "rows": int(len(train)), "rows_used": int(len(y)), "positives": int((y > 0).sum()),
                "first_date": str(train["feature_date"].min().date()),
                "last_date": str(train["feature_date"].max().date()),
            }
        self.boosters = train_boosters(self.params, jobs, self.rounds, self.workers)
        return self

    def _sample(self, train: pd.DataFrame, y: np.ndarray, seed: int):
        x = train[self.features].to_numpy(dtype=np.float32)
        w = np.ones(len(y))
        if self.negative_rate < 1.0:
            rng = np.random.default_rng(1000 + seed)
            keep = (y > 0) | (rng.random(len(y)) < self.negative_rate)
            w = np.where(y > 0, 1.0, 1.0 / self.negative_rate)[keep]
            x, y = x[keep], y[keep]
        return x, y, w

    # --- prediction -----------------------------------------------------------------
    def predict(self, rows: pd.DataFrame, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """(expected_withdrawals, p_any) for each row."""
        if len(rows) == 0:
            return np.zeros(0), np.zeros(0)
        x = rows[self.features].to_numpy(dtype=np.float32)
        # One prediction at a time: the threads of all the workers (the same values with any number).
        threads = int(self.params.get("num_threads", 0)) * max(self.workers, 1)
        mu = self.boosters[f"mu_{horizon}"].predict(x, num_threads=threads)
        p = self.boosters[f"p_{horizon}"].predict(x, num_threads=threads)
        return np.maximum(mu, 0.0), np.clip(p, 0.0, 1.0)

    def contributions(self, rows: pd.DataFrame, horizon: int) -> np.ndarray:
        """LightGBM's own SHAP values for the expected-count model (log scale), bias last."""
        x = rows[self.features].to_numpy(dtype=np.float32)
        return self.boosters[f"mu_{horizon}"].predict(x, pred_contrib=True)

    def importance(self) -> pd.DataFrame:
        out = []
        for name, b in self.boosters.items():
            out.append(pd.DataFrame({"model": name, "feature": b.feature_name(),
                                     "gain": b.feature_importance("gain"),
                                     "splits": b.feature_importance("split")}))
        imp = pd.concat(out, ignore_index=True)
        names = dict(zip([f"Column_{i}" for i in range(len(self.features))], self.features, strict=True))
        imp["feature"] = imp["feature"].map(lambda f: names.get(f, f))
        return imp

    # --- persistence ----------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, b in self.boosters.items():
            b.save_model(str(folder / f"{name}.txt"))
        meta = {"features": self.features, "params": self.params, "rounds": self.rounds,
                "horizons": list(self.horizons), "negative_rate": self.negative_rate,
                "history_days": self.history_days, "settle_quantile": self.settle_quantile, "card": self.card}
        (folder / "model.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path) -> HotspotModel:
        meta = json.loads((folder / "model.json").read_text())
        m = cls(features=meta["features"], params=meta["params"], rounds=meta["rounds"],
                horizons=tuple(meta["horizons"]), negative_rate=meta["negative_rate"],
                history_days=meta["history_days"], settle_quantile=meta.get("settle_quantile", 0.95),
                card=meta["card"])
        for h in m.horizons:
            for kind in ("mu", "p"):
                m.boosters[f"{kind}_{h}"] = lgb.Booster(model_file=str(folder / f"{kind}_{h}.txt"))
        return m


def from_config(cfg: dict, features: list[str]) -> HotspotModel:
    t = cfg["train"]
    return HotspotModel(features=list(features), params=dict(t["lightgbm"]), rounds=int(t["rounds"]),
                        horizons=tuple(cfg["horizons"]), negative_rate=float(t.get("negative_rate", 1.0)),
                        history_days=int(t["history_days"]), settle_quantile=float(t.get("settle_quantile", 0.95)),
                        workers=fit_workers(cfg))


def __getattr__(name: str):
    """HotspotPyfunc (the MLflow wrapper) is imported only when asked for: mlflow takes seconds to
    import, and scoring loads a registered version without it (tracking.load_version)."""
    if name == "HotspotPyfunc":
        from hotspots.forecast.pyfunc import HotspotPyfunc

        return HotspotPyfunc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
