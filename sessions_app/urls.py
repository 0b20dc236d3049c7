from django.urls import path

import kfadmin.converters  # noqa: F401  (registers <openid:…>)
from sessions_app import views

app_name = "sessions_app"

urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("queue/panel/", views.panel_empty, name="panel_empty"),
    path("queue/auto-assign/", views.auto_assign, name="auto_assign"),
    path("customers/<openid:openid>/assign/", views.assign, name="assign"),
    path("sessions/<int:session_id>/close/", views.close, name="close"),
    path("sessions/<int:session_id>/transfer/", views.transfer, name="transfer"),
]
