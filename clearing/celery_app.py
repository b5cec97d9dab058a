"""The Celery app of the back office: broker from the settings (RabbitMQ or Redis), eager and
in-process when no broker is set (the embedded default), one beat schedule in UTC.

Tasks are idempotent and acknowledged late: a worker killed mid-task leaves its message on the
broker and the next worker runs it again (the engine posts nothing twice). Each task runs its
coroutine with `asyncio.run` on a database engine opened and disposed inside that loop.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from celery import Celery
from celery.schedules import crontab

from clearing.billing import tasks as billing_tasks
from clearing.calendar import parse_cutoff
from clearing.cards import tasks as cards_tasks
from clearing.engine import tasks as engine_tasks
from clearing.mobile import tasks as mobile_tasks
from clearing.settings import Settings, get_settings
from clearing.settlement import tasks as settlement_tasks
from reconciliation import tasks as reconciliation_tasks

# The tasks are `shared_task`s of their own domains, imported plainly here: a worker started on
# this app knows every one of them, and no domain imports the app object.
TASK_MODULES = (
    engine_tasks,
    settlement_tasks,
    cards_tasks,
    mobile_tasks,
    billing_tasks,
    reconciliation_tasks,
)
# Settle a little after the cut-off, so the clearing run that follows it has begun.
SETTLE_AFTER_CUTOFF = timedelta(minutes=10)
# Reconcile once settlement (and the clearing run before it) has had time to finish.
RECONCILE_AFTER_CUTOFF = timedelta(minutes=40)
TASK_TIME_LIMIT_S = 3600  # a clearing run of a whole day's backlog fits easily


def settlement_crontab(
    settings: Settings, after_cutoff: timedelta = SETTLE_AFTER_CUTOFF
) -> crontab:
    """The UTC hour and minute of (cut-off + a margin) in the business time zone."""
    cutoff = parse_cutoff(settings.settlement_cutoff)
    zone = ZoneInfo(settings.business_time_zone)
    local = datetime.combine(date(2026, 1, 1), cutoff, tzinfo=zone) + after_cutoff
    at = local.astimezone(UTC)
    return crontab(hour=at.hour, minute=at.minute)


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery(
        "onecard",
        broker=settings.celery_broker_url or "memory://",
        backend=settings.celery_result_backend or None,
        include=[module.__name__ for module in TASK_MODULES],
        set_as_current=False,
    )
    app.conf.update(
        task_always_eager=settings.celery_eager,
        task_eager_propagates=True,
        task_store_eager_result=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=TASK_TIME_LIMIT_S,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        beat_schedule={
            "clear-staged-taps": {
                "task": "clearing.clear_staged",
                "schedule": float(settings.clearing_interval_s),
                "kwargs": {"trigger": "beat"},
            },
            "complete-card-replacements": {
                "task": "clearing.complete_replacements",
                "schedule": 900.0,  # a replaced card's balance moves within 15 min of being ready
            },
            "expire-undelivered-topups": {
                "task": "clearing.expire_topups",
                "schedule": 3600.0,  # an expired top-up is refunded within the hour
            },
            "dispatch-bill-confirmations": {
                "task": "clearing.dispatch_bill_confirmations",
                "schedule": 300.0,  # a confirmation lost between commit and queue waits ≤ 5 min
            },
            "settle-closed-day": {
                "task": "clearing.settle_day",
                "schedule": settlement_crontab(settings),
                "kwargs": {"business_day": None},
            },
            "reconcile-closed-day": {
                "task": "reconciliation.reconcile_day",
                "schedule": settlement_crontab(settings, RECONCILE_AFTER_CUTOFF),
                "kwargs": {"business_day": None},
            },
        },
    )
    return app


app = make_celery()
# The app the tasks' proxies bind to, even after a test makes other apps with make_celery.
app.set_current()
app.set_default()
