from django.urls import path

import kfadmin.converters  # noqa: F401  (registers <openid:…>)
from messaging import views

app_name = "messaging"

urlpatterns = [
    path("history/", views.history, name="history"),
    path("history/export.<str:fmt>", views.export, name="export"),
    path("inbox/", views.inbox, name="inbox"),
    path("alerts/", views.alerts, name="alerts"),
    path("conversations/<openid:openid>/", views.conversation, name="conversation"),
    path("conversations/<openid:openid>/seen/", views.seen, name="seen"),
    path("conversations/<openid:openid>/send/", views.send, name="send"),
    path("conversations/<openid:openid>/typing/", views.typing, name="typing"),
    path("conversations/<openid:openid>/transcript/", views.transcript, name="transcript"),
    path("outbound/<int:outbound_id>/", views.outbound_status, name="outbound"),
    path("outbound/<int:outbound_id>/resend/", views.resend, name="resend"),
    path("media/<int:media_file_id>/", views.media_file, name="media"),
    path("library/", views.library, name="library"),
]
