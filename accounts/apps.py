from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Official accounts and agents"

    def ready(self) -> None:
        from django.contrib.auth import signals

        from accounts import auth_events

        signals.user_logged_in.connect(auth_events.on_logged_in, dispatch_uid="kfadmin-audit-login")
        signals.user_logged_out.connect(auth_events.on_logged_out, dispatch_uid="kfadmin-audit-logout")
        signals.user_login_failed.connect(auth_events.on_login_failed, dispatch_uid="kfadmin-audit-login-failed")
