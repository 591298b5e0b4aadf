"""kfkit against a Kubeflow Pipelines cluster: connection, upload, submit (``kfp_api``) and
declarative recurring runs (``schedules``). Everything goes through ``kfp.Client``."""
