"""Run lineage: what kfkit records for every run and the questions it answers from it.

``store.MetadataStore`` is the one small interface (record runs, tasks, artifacts, events;
read them back). ``mlmd_store.MlmdStore`` implements it on ML Metadata, in the shape the
Kubeflow Pipelines v2 backend writes, so the queries in ``lineage`` answer identically from
a local SQLite file, a MySQL/MariaDB database or KFP's ``metadata-grpc-service``. Another
backend is one more implementation of the interface; components never see any of this.
"""

from kfkit.metadata.config import MetadataConfig
from kfkit.metadata.store import MetadataStore, open_store

__all__ = ["MetadataConfig", "MetadataStore", "open_store"]
