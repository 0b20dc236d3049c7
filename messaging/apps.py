from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messages and chat history"

    def ready(self) -> None:
        # The queue and the board (sessions_app, below this app) show each customer's
        # last message, which only the archive knows. (Imported here: models load only
        # once the app registry is ready.)
        from messaging.selectors import session_last_customer_text
        from sessions_app.selectors import session_preview_provide

        session_preview_provide(session_last_customer_text)
