"""kfadmin: a web console for the customer-service (kf) system of a WeChat Official Account."""

from .celery import app as celery_app

__all__ = ("celery_app",)
