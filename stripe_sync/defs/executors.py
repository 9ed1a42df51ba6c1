"""Where the steps of a run execute: Dagster's default, or Celery workers on any machine.

With Celery every step is a task that any worker may take, on another machine than the step
before it: nothing may pass through a local disk, which the pipeline never needs (the batch
frames travel through the state database).
"""

from __future__ import annotations

import dagster as dg

from stripe_sync.core.errors import ConfigError
from stripe_sync.settings.model import Secret, Settings


def build_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The executor `execution.executor` names (None: Dagster's default)."""
    execution = settings.execution
    if execution.executor == "default":
        return None
    if execution.celery_broker is None:
        raise ConfigError(
            "STRIPE_SYNC_EXECUTOR is celery without a broker: set STRIPE_SYNC_CELERY_BROKER."
        )
    try:
        from dagster_celery import celery_executor
    except ImportError:
        raise ConfigError(
            "STRIPE_SYNC_EXECUTOR is celery but dagster-celery is not installed: "
            "pip install 'stripe_sync[celery]'."
        ) from None
    broker = _source(execution.celery_broker)
    backend = _source(execution.celery_backend) if execution.celery_backend else broker
    return celery_executor.configured(
        {
            "broker": broker,
            "backend": backend,
            "config_source": {"task_default_queue": execution.celery_queue},
        }
    )


def _source(value: Secret) -> dict | str:
    """A URL as Dagster config: the variable it came from (never its value), else itself."""
    return {"env": value.variable} if value.variable else value.value
