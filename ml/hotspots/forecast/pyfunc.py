"""The registry form of the model: an MLflow pyfunc wrapping HotspotModel (its LightGBM text
models and JSON card are the logged artifacts). Only training imports it (mlflow is slow to import);
scoring loads a registered version's artifacts directly (tracking.load_version)."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from hotspots.forecast.model import HotspotModel


class HotspotPyfunc(mlflow.pyfunc.PythonModel):
    """Registry form of :class:`HotspotModel`: predict() returns mu_h and p_h per horizon."""

    def load_context(self, context):
        self.model = HotspotModel.load(Path(context.artifacts["model"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        out = {}
        for h in self.model.horizons:
            out[f"mu_{h}"], out[f"p_{h}"] = self.model.predict(model_input, h)
        return pd.DataFrame(out, index=model_input.index)
