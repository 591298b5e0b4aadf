"""Serving kfkit models with Seldon Core v1's Python wrapper.

``kfkit.serving.model`` holds the model class; ``kfkit.serving.app`` is the server (Seldon's REST,
metrics and gRPC servers behind ``kfkit.serving.guard``'s request checks), run in the separate
Python 3.12 serving environment (``serving/``) or the serving image; ``kfkit.serving.server``
starts and stops it from kfkit's own environment, for local runs and tests.

This package must stay importable in the serving environment, which has no kfp, TFDV or
MLMD: import only the standard library, numpy, pandas, scikit-learn, joblib, ``kfkit.errors``
and ``kfkit.model_folder`` here.
"""
