from django.urls import path

from messaging import views

app_name = "messaging"

urlpatterns = [
    path("history/", views.history, name="history"),
    path("history/export.<str:fmt>", views.export, name="export"),
    path("conversations/<str:openid>/", views.conversation, name="conversation"),
    path("conversations/<str:openid>/send/", views.send, name="send"),
    path("conversations/<str:openid>/typing/", views.typing, name="typing"),
    path("conversations/<str:openid>/transcript/", views.transcript, name="transcript"),
    path("outbound/<int:outbound_id>/", views.outbound_status, name="outbound"),
    path("outbound/<int:outbound_id>/resend/", views.resend, name="resend"),
]
