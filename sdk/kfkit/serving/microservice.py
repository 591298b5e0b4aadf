"""``seldon-core-microservice`` with two per-request costs removed.

Run as ``python -m kfkit.serving.microservice kfkit.serving.model.KfkitModel --service-type
MODEL ...``: the same arguments, environment variables, REST/gRPC/metrics servers and
responses as Seldon's own console script (it calls ``seldon_core.microservice.main``), with:

- **Empty metric updates skipped.** Seldon Core 1.19 calls ``SeldonMetrics.update(custom_metrics,
  method)`` after every request, also when the model returns no custom metrics (kfkit's never
  does). Each call reads and rewrites the worker's entry in a ``multiprocessing.Manager`` dict
  under a Manager lock: six round trips to another process, about 0.3 ms of a ~1 ms
  single-row request measured here. With nothing to record the update leaves what
  ``/metrics`` exposes unchanged, so it is skipped; updates that carry metrics run as before.
- **A listening socket per REST worker** (gunicorn's ``reuse_port``). With one shared socket the
  worker that wins the accept race keeps every keep-alive connection it took: 32 of 32 landed
  on one worker in a benchmark run, which then served them on one core. With ``SO_REUSEPORT``
  each worker binds its own socket and the kernel spreads new connections over them.

``benchmarks/serving_latency.py`` measures both against the unchanged script. Runs only in the
serving environment, where seldon-core is installed.
"""

from __future__ import annotations

from typing import Any


def skip_empty_metric_updates() -> None:
    """Make ``SeldonMetrics.update`` return at once when there is nothing to record."""
    from seldon_core.metrics import SeldonMetrics

    if getattr(SeldonMetrics.update, "_kfkit_skips_empty", False):
        return
    seldon_update = SeldonMetrics.update

    def update(self: SeldonMetrics, custom_metrics: list[dict[str, Any]], method: str) -> None:
        if custom_metrics:
            seldon_update(self, custom_metrics, method)

    update._kfkit_skips_empty = True  # type: ignore[attr-defined]
    SeldonMetrics.update = update  # type: ignore[method-assign]


def socket_per_rest_worker() -> None:
    """Set gunicorn's ``reuse_port`` on Seldon's REST server (``UserModelApplication``)."""
    from seldon_core.gunicorn_utils import UserModelApplication

    if getattr(UserModelApplication.load_config, "_kfkit_reuse_port", False):
        return
    seldon_load_config = UserModelApplication.load_config

    def load_config(self: UserModelApplication) -> None:
        seldon_load_config(self)
        self.cfg.set("reuse_port", True)

    load_config._kfkit_reuse_port = True  # type: ignore[attr-defined]
    UserModelApplication.load_config = load_config  # type: ignore[method-assign]


def main() -> None:
    skip_empty_metric_updates()
    socket_per_rest_worker()
    from seldon_core.microservice import main as seldon_main

    seldon_main()


if __name__ == "__main__":
    main()
