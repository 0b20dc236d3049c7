"""The Celery app. Tasks live in each Django app's `tasks.py`; the beat schedule is in settings."""

import os

from celery import Celery

from kfadmin.beat import BeatWatch

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kfadmin.settings")

app = Celery("kfadmin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(BeatWatch)
