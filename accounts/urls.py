from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("account/switch/", views.account_switch, name="account_switch"),
    path("password/", views.password_change, name="password_change"),
    path("settings/alerts/", views.alert_settings, name="alert_settings"),
    path("agents/", views.agents, name="agents"),
    path("agents/add/", views.agent_add, name="agent_add"),
    path("agents/options/", views.agent_options, name="agent_options"),
    path("agents/<int:pk>/", views.agent_detail, name="agent_detail"),
    path("agents/<int:pk>/nickname/", views.agent_nickname, name="agent_nickname"),
    path("agents/<int:pk>/avatar/", views.agent_avatar, name="agent_avatar"),
    path("agents/<int:pk>/invite/", views.agent_invite, name="agent_invite"),
    path("agents/<int:pk>/delete/", views.agent_delete, name="agent_delete"),
    path("audit/", views.audit, name="audit"),
    path("sync/", views.sync_status, name="sync"),
    path("sync/<slug:job>/run/", views.sync_run, name="sync_run"),
    path("users/", views.users, name="users"),
    path("users/add/", views.user_add, name="user_add"),
    path("users/<int:pk>/", views.user_detail, name="user_detail"),
    path("users/<int:pk>/password/", views.user_password, name="user_password"),
    path("users/<int:pk>/active/", views.user_active, name="user_active"),
]
