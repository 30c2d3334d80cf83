"""The job engine: the database row a page polls while a worker does registry I/O.

`job_submit` is the one way a job starts: it checks the queue, creates the
row and sends the `job_run` task, by name, once the transaction commits.
`job_run` is the one way a worker runs a job: it starts the job, keeps its
lease, runs the runner its kind names in KINDS and turns any exception into
a failed job with a message, so that no job stays "running" after its worker
gave up on it. A new kind of job is one runner and one entry in KINDS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from registry import errors

from .crypto import CredentialsUndecryptable
from .models import Job
from .services import queue

logger = logging.getLogger(__name__)

# Write progress at most this often; the final state is always written.
_FLUSH_SECONDS = 0.3


class JobProgress:
    """Collects a job's steps and writes them to its row, throttled."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.steps: list[dict] = list(job.steps or [])
        self._last_flush = 0.0

    def __call__(self, event: dict) -> None:
        self.steps.append({"at": timezone.now().isoformat(timespec="milliseconds"), **event})
        if time.monotonic() - self._last_flush >= _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        # Only while this attempt owns the job: a taken-over attempt must not rewrite the new one's steps.
        Job.objects.filter(pk=self.job.pk, attempts=self.job.attempts).update(steps=self.steps)
        self._last_flush = time.monotonic()


def job_create(*, kind: str, registry, target: str, params: dict, user=None) -> Job:
    """A queued job's row, not sent to a worker (job_submit sends it; a test may run it with job_run)."""
    return Job.objects.create(kind=kind, registry=registry, target=target, params=params,
                              created_by=user if user and user.is_authenticated else None)


class JobBusy(Exception):
    """Another worker is running this job now: the task should come back later."""

    def __init__(self, job_id: int, retry_in: float) -> None:
        super().__init__(f"job {job_id} is running on another worker")
        self.retry_in = retry_in


def _lease_seconds() -> float:
    return float(settings.JOB_LEASE_SECONDS)


def job_start(*, job_id: int, exclusive: bool = False, worker: str = "") -> Job | None:
    """Mark a job running; None when it has already finished (a redelivered task).

    An `exclusive` job (a push, a rollback) runs on one worker at a time: a
    task delivered again while the first run still holds the lease (the broker
    redelivers a task that outlives its visibility timeout) raises JobBusy
    instead of running beside it. A lease whose heartbeat stopped (the worker
    died) is taken over.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_done:
            return None
        now = timezone.now()
        lease = timedelta(seconds=_lease_seconds())
        if (exclusive and job.status == Job.STATUS_RUNNING and job.heartbeat_at is not None
                and now - job.heartbeat_at < lease):
            raise JobBusy(job_id, retry_in=_lease_seconds())
        job.status = Job.STATUS_RUNNING
        job.attempts += 1
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.worker = worker[:255]
        if job.attempts > 1:
            job.steps = [*job.steps, {"at": now.isoformat(timespec="milliseconds"),
                                      "event": "retry", "attempt": job.attempts}]
        job.save(update_fields=["status", "attempts", "started_at", "heartbeat_at", "steps", "worker"])
        return job


def _heartbeat_write(job: Job) -> int:
    """Refresh this attempt's lease; 0 rows when another attempt has taken the job over or it is done."""
    return Job.objects.filter(pk=job.pk, attempts=job.attempts, status=Job.STATUS_RUNNING).update(
        heartbeat_at=timezone.now())


@contextmanager
def job_lease(job: Job) -> Iterator[None]:
    """Keep the job's heartbeat fresh while the body runs, from a thread of its own
    (a single blob can take minutes to stream, with no progress event meanwhile)."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(_lease_seconds() / 4):
                try:
                    _heartbeat_write(job)
                except Exception as exc:
                    # The database went away for a moment: say so and try again at the next beat,
                    # on a new connection. A dead heartbeat would let another worker take the job over.
                    logger.warning("job %s: the heartbeat could not be written (%s: %s); trying again",
                                   job.pk, type(exc).__name__, exc)
                    _connection_drop()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"job-{job.pk}-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _connection_drop() -> None:
    try:
        connection.close()
    except Exception:  # a broken connection may fail to close too; the next query opens a new one
        pass


def job_finish(*, job: Job, progress: JobProgress | None, error: str = "", digest: str = "",
               result: dict | None = None) -> bool:
    """End the job, if this attempt still owns it; False (and nothing written) when it does not.

    An attempt whose lease another worker took over (it stalled past the
    lease, the broker delivered the task again) must not overwrite the new
    owner's result, nor finish a job that is done.
    """
    fields = {"status": Job.STATUS_FAILED if error else Job.STATUS_SUCCEEDED, "error": error,
              "digest": digest or job.digest, "result": result or {}, "finished_at": timezone.now()}
    if progress is not None:
        fields["steps"] = progress.steps
    owned = Job.objects.filter(pk=job.pk, attempts=job.attempts, status=Job.STATUS_RUNNING).update(**fields)
    if not owned:
        logger.warning("job %s: attempt %s no longer owns the job; its outcome is dropped (%s)",
                       job.pk, job.attempts, error or "succeeded")
        return False
    for name, value in fields.items():
        setattr(job, name, value)
    return True


class JobFailed(Exception):
    """Raised by a runner to end its job failed, with a message for the page and a result."""

    def __init__(self, message: str, *, result: dict | None = None, digest: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.result = result or {}
        self.digest = digest


# A runner returns this when its job goes on elsewhere (a scan's repository tasks finish it).
CONTINUES = object()


def job_error(exc: BaseException) -> tuple[str, dict]:
    """The message and result a failed job shows for `exc`: the user's words, never a secret."""
    if isinstance(exc, JobFailed):
        return exc.message, exc.result
    if isinstance(exc, errors.RegistryError):
        return f"registry error: {exc}", {"code": exc.code}
    if isinstance(exc, CredentialsUndecryptable):
        return ("the registry's stored credentials cannot be decrypted with the configured keys (was "
                "CREDENTIALS_KEY changed without keeping the old key in CREDENTIALS_KEYS?): enter them again "
                "on the registry's edit page"), {"credentials": "undecryptable"}
    if isinstance(exc, DatabaseError):
        return f"database error ({type(exc).__name__}): see the worker log", {}
    return f"internal error ({type(exc).__name__}): see the worker log", {}


def job_fail(*, job: Job, progress: JobProgress | None, exc: BaseException) -> bool:
    """End the job failed because of `exc`; logs the traceback of anything but an expected failure."""
    if not isinstance(exc, JobFailed | errors.RegistryError | CredentialsUndecryptable):
        logger.error("%s job %s failed", job.kind, job.pk, exc_info=exc)
    message, result = job_error(exc)
    digest = exc.digest if isinstance(exc, JobFailed) else ""
    if isinstance(exc, DatabaseError) and not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()  # a broken connection: finish on a new one
    return job_finish(job=job, progress=progress, error=message, result=result, digest=digest)


# -- the kinds ---------------------------------------------------------------------


@dataclass(frozen=True)
class JobKind:
    """How the engine runs one kind of job. Dotted paths, imported when a job of the kind runs."""

    runner: str  # runner(job, progress): ends the job with job_finish, raises, or returns CONTINUES
    exclusive: bool = False  # one worker at a time (it moves tags): a redelivery while it runs gets JobBusy
    needs_registry: bool = True  # a job whose registry was removed fails before its runner runs
    handed_off: str = ""  # predicate(job): the job goes on in other tasks (a fanned-out scan); nothing to do
    cleanup: str = ""  # cleanup(job_id), after every run, whatever its outcome


KINDS: dict[str, JobKind] = {
    Job.KIND_SCAN: JobKind("manifests.scan.fanout.scan_execute", handed_off="manifests.scan.fanout.scan_handed_off"),
    Job.KIND_PUSH: JobKind("manifests.services.push.push_execute", exclusive=True),
    Job.KIND_ROLLBACK: JobKind("manifests.services.push.rollback_execute", exclusive=True, needs_registry=False),
    Job.KIND_CHECK: JobKind("manifests.services.registries.registry_check_execute", needs_registry=False,
                            cleanup="manifests.services.registries.registry_draft_forget"),
    Job.KIND_RULE_APPLY: JobKind("manifests.services.rules_apply.rule_apply_execute", exclusive=True),
    Job.KIND_PROMOTE: JobKind("manifests.services.promote.promotion_execute", exclusive=True),
}

# The task every job runs in (manifests/tasks.py), sent by name: no service imports the tasks.
JOB_TASK = "manifests.tasks.job_run"


# -- submitting --------------------------------------------------------------------


def task_send(name: str, *args, on_error: Callable[[Exception], None] | None = None) -> None:
    """Send the task `name` with `args` once the transaction commits (at once outside one)."""

    def send() -> None:
        try:
            current_app.send_task(name, args=list(args), retry=False)
        except Exception as exc:  # kombu's errors vary by transport
            logger.warning("could not queue %s%s: %s", name, tuple(args), exc)
            if on_error is not None:
                on_error(exc)

    transaction.on_commit(send)


def job_submit(*, kind: str, registry, target: str, params: dict, user=None) -> Job:
    """Create a job and send it to a worker once the transaction commits.

    Refused up front (queue.QueueUnavailable) when the queue is down: nothing
    is queued into the void. A job whose task cannot be sent fails at once.
    """
    if kind not in KINDS:
        raise ValueError(f"no job kind {kind!r}")
    if not queue.queue_available():
        raise queue.QueueUnavailable()
    job = job_create(kind=kind, registry=registry, target=target, params=params, user=user)
    job_send(job)
    return job


def job_send(job: Job) -> None:
    """Send a created job to a worker once the transaction commits; it fails at once if it cannot be sent."""

    def unsent(exc: Exception) -> None:
        Job.objects.filter(pk=job.pk).update(status=Job.STATUS_FAILED, finished_at=timezone.now(),
                                             error="the task queue was unreachable: nothing was done")

    task_send(JOB_TASK, job.pk, on_error=unsent)


# -- running -----------------------------------------------------------------------

_inline: ContextVar[bool] = ContextVar("job_inline", default=False)


def job_inline() -> bool:
    """Whether the job running now runs its parts here, one after another (job_run(inline=True))."""
    return _inline.get()


def _job_started(job_id: int, spec: JobKind, worker: str) -> tuple[Job, JobProgress] | None:
    """Start the job; None when there is nothing to do (done already, handed off, its registry removed)."""
    if spec.handed_off:
        job = Job.objects.select_related("registry").filter(pk=job_id).first()
        if job is None or job.is_done or import_string(spec.handed_off)(job):
            return None
    job = job_start(job_id=job_id, exclusive=spec.exclusive, worker=worker)
    if job is None:
        return None
    progress = JobProgress(job)
    if spec.needs_registry and job.registry is None:
        job_finish(job=job, progress=progress, error="the registry was removed")
        return None
    return job, progress


def job_run(*, job_id: int, worker: str = "", inline: bool = False) -> None:
    """Start, lease, run and end one job of any kind: the single place a job's end is decided.

    The runner ends a job that succeeds (with `job_finish`, in its own
    transaction when it writes more) or raises: any exception fails the job
    with a message (`job_error`). A runner that returns without ending the job
    fails it too, unless it returns CONTINUES. `inline` runs the job's parts
    here instead of sending them to workers (tests, the benchmark, a machine
    without a worker): the same code users' workers run. Raises JobBusy when
    an exclusive job is running on another worker.
    """
    kind = Job.objects.filter(pk=job_id).values_list("kind", flat=True).first()
    if kind is None:
        return
    spec = KINDS.get(kind)
    if spec is None:  # a row this version has no runner for: it ends, and says why
        job = job_start(job_id=job_id, worker=worker)
        if job is not None:
            job_finish(job=job, progress=None, error=f"no runner for jobs of kind {kind!r}")
        return
    token = _inline.set(inline)
    try:
        _job_run(job_id, spec, worker)
    finally:
        _inline.reset(token)
        if spec.cleanup:
            import_string(spec.cleanup)(job_id)


def _job_run(job_id: int, spec: JobKind, worker: str) -> None:
    started = _job_started(job_id, spec, worker)
    if started is None:
        return
    job, progress = started
    with job_lease(job):
        try:
            outcome = import_string(spec.runner)(job, progress)
        except Exception as exc:
            try:
                job_fail(job=job, progress=progress, exc=exc)
            except Exception:
                # Not even the failure could be written (the database is down): the lease
                # stops with this attempt, so a redelivery can take the job over.
                logger.exception("job %s: its failure could not be recorded", job.pk)
                raise exc from None
            return
    if outcome is not CONTINUES and not Job.objects.filter(pk=job.pk).exclude(
            status=Job.STATUS_RUNNING).exists():
        job_finish(job=job, progress=progress, error="the job ended without a result: see the worker log")
