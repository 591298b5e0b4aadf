"""Declarative recurring runs: make KFP's recurring runs in one experiment match a file.

``kfkit schedule apply -f configs/schedules.yaml`` compares the file with the recurring runs
kfkit manages in the file's experiment and

- creates the missing ones;
- replaces the changed ones (trigger: cron or interval; ``max_concurrency``; ``no_catchup``;
  ``enabled``; parameters; pipeline version; service account). KFP's v2beta1 API has no
  update call for recurring runs (create, get, list, enable, disable, delete only), so an
  update is create + delete (the old one goes only once its replacement is accepted): the
  recurring run gets a new id, its past runs stay;
- deletes the removed ones.

"Managed by kfkit" means the recurring run's description starts with ``MANAGED_TAG``; kfkit
never touches another recurring run, and refuses to apply when an unmanaged one in the same
experiment has a name the file wants. ``--dry-run`` prints the plan and changes nothing
(not even the pipeline upload). Applying the same file twice changes nothing the second time.

File format (every key but ``name``, ``pipeline`` and one of ``cron``/``interval_seconds``
is optional)::

    experiment: kfkit-retraining
    schedules:
      - name: penguins-nightly
        pipeline: training
        cron: "0 0 2 * * *"        # 6 fields, seconds first (KFP's cron format)
        max_concurrency: 1
        no_catchup: true
        enabled: true
        service_account: kfkit-pipeline-runner
        enable_caching: true       # false: every task runs every time
        parameters: {data_uri: "s3://raw/penguins/"}

``enable_caching`` (default true) keeps the compiled pipeline's per-task caching, keyed on the
data's content identity (resolve_source), so a nightly run on unchanged data reuses every cached
task and a run on new data reruns from ingest; false uploads and schedules the variant with every
task's cache off (its own content-named version).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from kfkit.cluster.kfp_api import (
    PAGE_SIZE,
    KfpSettings,
    api_errors,
    check_parameters,
    ensure_experiment,
    spec_with_caching,
    upload,
)
from kfkit.errors import KfkitError
from kfkit.yaml_files import load_yaml

MANAGED_TAG = "[managed-by: kfkit]"
SCHEDULE_KEYS = {
    "name",
    "pipeline",
    "cron",
    "interval_seconds",
    "max_concurrency",
    "no_catchup",
    "enabled",
    "service_account",
    "enable_caching",
    "parameters",
}


@dataclass
class Schedule:
    """One recurring run as the file wants it."""

    name: str
    pipeline: str
    cron: str | None = None
    interval_seconds: int | None = None
    max_concurrency: int = 1
    no_catchup: bool = True
    enabled: bool = True
    service_account: str | None = None
    enable_caching: bool = True
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScheduleFile:
    experiment: str
    schedules: list[Schedule]


def load_schedules(path: str) -> ScheduleFile:
    """Read and check a schedules file; every problem is one line naming the file and entry."""
    data = load_yaml(path, "schedules file")
    if not isinstance(data, dict) or not isinstance(data.get("schedules", []), list):
        raise KfkitError(f"{path}: expected a mapping with `experiment` and a `schedules` list")
    unknown = sorted(set(data) - {"experiment", "schedules"})
    if unknown:
        raise KfkitError(f"{path}: unknown key(s) {unknown}; expected experiment, schedules")
    experiment = data.get("experiment") or "kfkit-schedules"
    schedules, seen = [], set()
    for index, entry in enumerate(data.get("schedules") or []):
        where = f"{path}: schedules[{index}]"
        if not isinstance(entry, dict):
            raise KfkitError(f"{where}: expected a mapping")
        unknown = sorted(set(entry) - SCHEDULE_KEYS)
        if unknown:
            raise KfkitError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(SCHEDULE_KEYS)}")
        name, pipeline = entry.get("name"), entry.get("pipeline")
        if not isinstance(name, str) or not name or not isinstance(pipeline, str) or not pipeline:
            raise KfkitError(f"{where}: `name` and `pipeline` are required strings")
        where = f"{path}: schedule '{name}'"
        if name in seen:
            raise KfkitError(f"{where}: appears twice; names must be unique")
        seen.add(name)
        cron, interval = entry.get("cron"), entry.get("interval_seconds")
        if (cron is None) == (interval is None):
            raise KfkitError(f"{where}: give exactly one of `cron` and `interval_seconds`")
        if cron is not None and (not isinstance(cron, str) or len(cron.split()) != 6):
            raise KfkitError(f"{where}: `cron` must have 6 fields, seconds first (e.g. '0 0 2 * * *')")
        if interval is not None and (
            not isinstance(interval, int) or isinstance(interval, bool) or interval < 1
        ):
            raise KfkitError(f"{where}: `interval_seconds` must be a positive integer, got {interval!r}")
        concurrency = entry.get("max_concurrency", 1)
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or not 1 <= concurrency <= 10:
            raise KfkitError(f"{where}: `max_concurrency` must be an integer from 1 to 10 (KFP's limit)")
        for key in ("no_catchup", "enabled", "enable_caching"):
            if key in entry and not isinstance(entry[key], bool):
                raise KfkitError(f"{where}: `{key}` must be true or false")
        parameters = entry.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise KfkitError(f"{where}: `parameters` must be a mapping")
        schedules.append(
            Schedule(
                name=name,
                pipeline=pipeline,
                cron=cron,
                interval_seconds=interval,
                max_concurrency=concurrency,
                no_catchup=entry.get("no_catchup", True),
                enabled=entry.get("enabled", True),
                service_account=entry.get("service_account"),
                enable_caching=entry.get("enable_caching", True),
                parameters=parameters,
            )
        )
    return ScheduleFile(experiment, schedules)


# -- comparing what is wanted with what runs ----------------------------------------------------


def _service_account(schedule: Schedule, settings: KfpSettings) -> str:
    """The entry's service account, else the command's (empty: the server's default)."""
    return schedule.service_account if schedule.service_account is not None else settings.service_account


def _desired_state(schedule: Schedule, version_id: str, service_account: str) -> dict[str, Any]:
    return {
        "trigger": {"cron": schedule.cron}
        if schedule.cron
        else {"interval_seconds": schedule.interval_seconds},
        "max_concurrency": schedule.max_concurrency,
        "no_catchup": schedule.no_catchup,
        "enabled": schedule.enabled,
        "parameters": schedule.parameters,
        "pipeline_version_id": version_id,
        "service_account": service_account,
    }


def _current_state(recurring_run: Any) -> dict[str, Any]:
    """The same shape from the server's object (int64 fields arrive as strings)."""
    trigger = recurring_run.trigger
    if trigger is not None and trigger.cron_schedule is not None:
        wanted_trigger: dict[str, Any] = {"cron": trigger.cron_schedule.cron}
    elif trigger is not None and trigger.periodic_schedule is not None:
        wanted_trigger = {"interval_seconds": int(trigger.periodic_schedule.interval_second or 0)}
    else:
        wanted_trigger = {}
    reference = recurring_run.pipeline_version_reference
    runtime = recurring_run.runtime_config
    return {
        "trigger": wanted_trigger,
        "max_concurrency": int(recurring_run.max_concurrency or 0),
        "no_catchup": bool(recurring_run.no_catchup),
        "enabled": recurring_run.mode == "ENABLE",
        "parameters": dict((runtime.parameters if runtime else None) or {}),
        "pipeline_version_id": reference.pipeline_version_id if reference else None,
        "service_account": recurring_run.service_account or "",
    }


def _canonical(value: Any) -> str:
    # 42 and 42.0 are the same parameter (protobuf Struct numbers come back as doubles).
    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    return json.dumps(norm(value), sort_keys=True)


@dataclass
class Action:
    """One step of the plan: create, update (create + delete), delete or unchanged."""

    action: str
    name: str
    recurring_run_id: str | None = None
    changes: list[str] = field(default_factory=list)
    new_recurring_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Plan:
    experiment: str
    experiment_id: str | None
    actions: list[Action]
    uploads: list[dict[str, Any]]
    dry_run: bool

    @property
    def changed(self) -> bool:
        return any(a.action != "unchanged" for a in self.actions) or any(
            u["created_pipeline"] or u["created_version"] for u in self.uploads
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "experiment_id": self.experiment_id,
            "dry_run": self.dry_run,
            "changed": self.changed,
            "uploads": self.uploads,
            "actions": [a.to_dict() for a in self.actions],
        }


def list_recurring_runs(client: Any, settings: KfpSettings, experiment_id: str | None = None) -> list[Any]:
    """Every recurring run in the experiment (or the namespace), following pages."""
    runs, token = [], ""
    with api_errors(settings, "list recurring runs"):
        while True:
            response = client.list_recurring_runs(
                page_token=token,
                page_size=PAGE_SIZE,
                experiment_id=experiment_id,
                namespace=None if experiment_id else settings.namespace,
            )
            runs.extend(response.recurring_runs or [])
            token = response.next_page_token or ""
            if not token:
                return runs


def is_managed(recurring_run: Any) -> bool:
    return (recurring_run.description or "").startswith(MANAGED_TAG)


def apply(
    client: Any,
    settings: KfpSettings,
    schedule_file: ScheduleFile,
    dry_run: bool = False,
    enable_caching: bool | None = None,
) -> Plan:
    """Reconcile the file's experiment with the file; with ``dry_run`` only compute the plan.
    ``enable_caching``, when given, applies to every entry (else each entry's, default true)."""
    import tempfile
    from pathlib import Path

    from kfkit.catalog import compiled_pipeline_path

    if enable_caching is not None:
        entries = [replace(s, enable_caching=enable_caching) for s in schedule_file.schedules]
        schedule_file = replace(schedule_file, schedules=entries)

    # Every entry is checked before anything is written.
    wanted_parameters = {
        s.name: check_parameters(compiled_pipeline_path(s.pipeline), s.parameters)
        for s in schedule_file.schedules
    }
    uploads, versions = [], {}
    for pipeline, caching in sorted({(s.pipeline, s.enable_caching) for s in schedule_file.schedules}):
        with tempfile.TemporaryDirectory(prefix="kfkit-spec-") as folder:
            spec_path = spec_with_caching(compiled_pipeline_path(pipeline), caching, Path(folder))
            result = upload(client, settings, pipeline, spec_path, dry_run=dry_run)
        versions[pipeline, caching] = result
        uploads.append({**result.to_dict(), "enable_caching": caching})

    experiment_id = ensure_experiment(client, settings, schedule_file.experiment, dry_run=dry_run)
    existing = list_recurring_runs(client, settings, experiment_id) if experiment_id else []
    by_name: dict[str, Any] = {}
    duplicates: list[Any] = []
    for run in existing:
        if not is_managed(run):
            if run.display_name in {s.name for s in schedule_file.schedules}:
                raise KfkitError(
                    f"recurring run '{run.display_name}' ({run.recurring_run_id}) in experiment "
                    f"'{schedule_file.experiment}' is not managed by kfkit; rename or delete it first"
                )
            continue
        if run.display_name in by_name:  # a duplicate left by an interrupted apply: remove it
            duplicates.append(run)
            continue
        by_name[run.display_name] = run

    actions: list[Action] = []
    for schedule in schedule_file.schedules:
        service_account = _service_account(schedule, settings)
        desired = _desired_state(
            schedule, versions[schedule.pipeline, schedule.enable_caching].version_id, service_account
        )
        desired["parameters"] = wanted_parameters[schedule.name]
        current = by_name.pop(schedule.name, None)
        if current is None:
            actions.append(Action("create", schedule.name))
            continue
        now = _current_state(current)
        if not desired["service_account"]:  # the server's default, whatever it is called there
            del desired["service_account"]
        changes = [key for key in desired if _canonical(desired[key]) != _canonical(now[key])]
        actions.append(
            Action("update" if changes else "unchanged", schedule.name, current.recurring_run_id, changes)
        )
    for name, run in sorted(by_name.items()):
        actions.append(Action("delete", name, run.recurring_run_id))
    for run in duplicates:
        actions.append(Action("delete", run.display_name, run.recurring_run_id, ["duplicate"]))

    plan = Plan(schedule_file.experiment, experiment_id, actions, uploads, dry_run)
    if dry_run:
        return plan
    schedules = {s.name: s for s in schedule_file.schedules}
    for action in actions:
        with api_errors(settings, f"{action.action} recurring run {action.name}"):
            if action.action == "delete":
                client.delete_recurring_run(action.recurring_run_id)
            if action.action in ("create", "update"):
                schedule = schedules[action.name]
                created = _create(
                    client,
                    settings,
                    experiment_id,
                    schedule,
                    versions[schedule.pipeline, schedule.enable_caching],
                    wanted_parameters[schedule.name],
                )
                action.new_recurring_run_id = created.recurring_run_id
                _refuse_ignored_service_account(client, settings, schedule, created)
            if action.action == "update":
                # KFP cannot change a recurring run: the old one goes only once its replacement
                # exists and is accepted, so a refused update leaves the schedule as it was (a
                # failure between the two leaves a duplicate, which the next apply deletes).
                client.delete_recurring_run(action.recurring_run_id)
    return plan


def _refuse_ignored_service_account(
    client: Any, settings: KfpSettings, schedule: Schedule, created: Any
) -> None:
    """KFP's API server 2.14 to 2.16 drops a v2 recurring run's service account and schedules it
    under its own default (kubeflow/pipelines#13311, fixed upstream by #13325): the runs would
    execute as another identity than asked, and every apply would see the difference and replace
    the recurring run again. Delete what was just created and say how to get what was asked."""
    wanted = _service_account(schedule, settings)
    got = created.service_account or ""
    if not wanted or got in ("", wanted):
        return
    with api_errors(settings, f"delete recurring run {schedule.name}"):
        client.delete_recurring_run(created.recurring_run_id)
    where = settings.host or "KFP (via kubeconfig)"
    raise KfkitError(
        f"{where}: the KFP API server scheduled recurring run '{schedule.name}' as service account "
        f"'{got}', not '{wanted}' (KFP 2.14-2.16 ignore a recurring run's service account, "
        f"kubeflow/pipelines#13311), so it was deleted again: set the API server's "
        f"DEFAULTPIPELINERUNNERSERVICEACCOUNT to '{wanted}', or ask for '{got}'"
    )


def _create(
    client: Any,
    settings: KfpSettings,
    experiment_id: str,
    schedule: Schedule,
    uploaded: Any,
    parameters: dict[str, Any],
) -> Any:
    service_account = _service_account(schedule, settings)
    return client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=schedule.name,
        description=(
            f"{MANAGED_TAG} kfkit schedule apply: {schedule.pipeline} {uploaded.version}"
            + ("" if schedule.enable_caching else " (caching off)")
        ),
        interval_second=schedule.interval_seconds,
        cron_expression=schedule.cron,
        max_concurrency=schedule.max_concurrency,
        no_catchup=schedule.no_catchup,
        params=parameters,
        pipeline_id=uploaded.pipeline_id,
        version_id=uploaded.version_id,
        enabled=schedule.enabled,
        service_account=service_account or None,
    )


def describe(recurring_run: Any) -> dict[str, Any]:
    """One recurring run for ``kfkit schedule list``."""
    state = _current_state(recurring_run)
    return {
        "name": recurring_run.display_name,
        "recurring_run_id": recurring_run.recurring_run_id,
        "managed": is_managed(recurring_run),
        "experiment_id": recurring_run.experiment_id,
        "status": recurring_run.status,
        **state,
    }
