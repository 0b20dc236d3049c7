"""kfadmin settings, read from the environment (see `.env.example`).

With no environment at all kfadmin runs on its embedded default: SQLite, the kombu
filesystem broker and the bundled WeChat emulator.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from kfadmin.envconf import (
    broker_url,
    cache_from_url,
    database_from_url,
    env_bool,
    env_http_url,
    env_int,
    env_list,
    env_str,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = secret_key("SECRET_KEY", debug=DEBUG, keep_file=BASE_DIR / ".local" / "secret_key")
# Keys that encrypt secrets stored in the database; the first encrypts, all decrypt.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEY", [])
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "accounts",
    "sessions_app",
    "messaging",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "kfadmin.urls"
WSGI_APPLICATION = "kfadmin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "accounts.access.header_context",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        "DATABASE_URL", "sqlite:///var/kfadmin.sqlite3", base_dir=BASE_DIR
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# ModelBackend with a cheaper per-request user read (accounts/backends.py).
AUTHENTICATION_BACKENDS = ["accounts.backends.KfAdminBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("简体中文")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"  # filled by `collectstatic` for production
WHITENOISE_USE_FINDERS = True  # serve from the app folders too, so development needs no collectstatic
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

# A shared cache (Redis) in production: sessions are read from it instead of the
# database on every request, and every process serves the same cached fragments.
CACHES = {"default": cache_from_url("CACHE_URL", "")}
SHARED_CACHE = CACHES["default"]["BACKEND"].endswith("RedisCache")
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cached_db" if SHARED_CACHE else "django.contrib.sessions.backends.db"
)
# How long a polled fragment (overview, queue, sessions board) is reused for other
# viewers of the same thing; 0 renders every poll (accounts/live.py).
FRAGMENT_CACHE_SECONDS = env_int("FRAGMENT_CACHE_SECONDS", 2, minimum=0)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# WeChat
WECHAT_API_BASE = env_http_url("WECHAT_API_BASE", "https://api.weixin.qq.com")
WECHAT_TIMEOUT = env_int("WECHAT_TIMEOUT", 10, minimum=1)
EMULATOR_PORT = env_int("EMULATOR_PORT", 8765, minimum=1)

# Celery
CELERY_BROKER_URL = broker_url("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Sync schedule and queues ---------------------------------------------------------
# Seconds between two runs of each periodic sync (per official account).
SYNC_ONLINE_SECONDS = env_int("SYNC_ONLINE_SECONDS", 15, minimum=5)
SYNC_QUEUE_SECONDS = env_int("SYNC_QUEUE_SECONDS", 15, minimum=5)
SYNC_AGENTS_SECONDS = env_int("SYNC_AGENTS_SECONDS", 300, minimum=15)
SYNC_SESSIONS_SECONDS = env_int("SYNC_SESSIONS_SECONDS", 60, minimum=15)
SYNC_HISTORY_SECONDS = env_int("SYNC_HISTORY_SECONDS", 300, minimum=60)
# How far back the first history sync of an account reaches (`manage.py backfill_history`
# imports more).
HISTORY_LOOKBACK_DAYS = env_int("HISTORY_LOOKBACK_DAYS", 2, minimum=1)
# How long a sync run's claim lasts without a sign of life. A run renews it after each
# step (a page of history, one agent's session list), and one step is at most a token
# fetch, the call and its repeat after a refreshed token (4 × WECHAT_TIMEOUT) plus
# storing the answer; a claim not renewed for this long belongs to a dead or hung run,
# which the next run takes over. 60 s at the default timeout.
SYNC_LEASE_SECONDS = env_int("SYNC_LEASE_SECONDS", 4 * WECHAT_TIMEOUT + 20, minimum=2)
if SYNC_LEASE_SECONDS <= WECHAT_TIMEOUT:
    raise ImproperlyConfigured(
        f"SYNC_LEASE_SECONDS ({SYNC_LEASE_SECONDS}) must be longer than WECHAT_TIMEOUT "
        f"({WECHAT_TIMEOUT}), or every slow WeChat answer hands a live run to another worker."
    )

# Sync work and sends go to separate queues, so a long history sync never delays a
# supervisor's message. First matching pattern wins.
CELERY_TASK_ROUTES = {
    "*.send_*": {"queue": "send"},
    "*.sync_*": {"queue": "sync"},
}
# Exactly one beat process runs this. Each entry fans out one task per active
# official account; `expires` drops a run that waited longer than its interval (the
# next one is already due), so a busy worker does not pile up stale syncs.
CELERY_BEAT_SCHEDULE = {
    "sync-online": {
        "task": "accounts.tasks.sync_all_online_task",
        "schedule": SYNC_ONLINE_SECONDS,
        "options": {"expires": SYNC_ONLINE_SECONDS},
    },
    "sync-queue": {
        "task": "sessions_app.tasks.sync_all_queue_task",
        "schedule": SYNC_QUEUE_SECONDS,
        "options": {"expires": SYNC_QUEUE_SECONDS},
    },
    "sync-sessions": {
        "task": "sessions_app.tasks.sync_all_sessions_task",
        "schedule": SYNC_SESSIONS_SECONDS,
        "options": {"expires": SYNC_SESSIONS_SECONDS},
    },
    "sync-agents": {
        "task": "accounts.tasks.sync_all_agents_task",
        "schedule": SYNC_AGENTS_SECONDS,
        "options": {"expires": SYNC_AGENTS_SECONDS},
    },
    "sync-history": {
        "task": "messaging.tasks.sync_all_history_task",
        "schedule": SYNC_HISTORY_SECONDS,
        "options": {"expires": SYNC_HISTORY_SECONDS},
    },
    # Messages queued while the broker was down, or whose worker died mid-send.
    "send-outbox-sweep": {
        "task": "messaging.tasks.send_outbox_sweep_task",
        "schedule": 30,
        "options": {"expires": 30},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The filesystem transport has no host; kombu warns about that on every connection.
    LOGGING["loggers"]["kombu.connection"] = {"level": "ERROR"}
