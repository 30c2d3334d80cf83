from __future__ import annotations

import gc
import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _startup_objects_frozen(**kwargs) -> None:
    """A pool process starts with everything Django and Celery loaded: moved out of the garbage
    collector's sight, a full collection no longer walks it (a scan allocates enough to run many)."""
    gc.freeze()
