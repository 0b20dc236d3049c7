"""kfadmin settings, read from the environment (see `.env.example`).

With no environment at all kfadmin runs on its embedded default: SQLite, the embedded
filesystem broker (kfadmin.broker) and the bundled WeChat emulator.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

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
    field_encryption_keys,
    proxy_ssl_header,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = secret_key("SECRET_KEY", debug=DEBUG, keep_file=BASE_DIR / ".local" / "secret_key")
# Keys that encrypt secrets stored in the database; the first encrypts, all decrypt
# (kfadmin/secrets.py). Required when DEBUG is off.
FIELD_ENCRYPTION_KEYS = field_encryption_keys(
    "FIELD_ENCRYPTION_KEY", debug=DEBUG, keep_file=BASE_DIR / ".local" / "field_encryption_key"
)
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
    "csp",
    # Before accounts: its login-failure handler must have counted an attempt when
    # accounts' audit receiver reads the count (accounts/auth_events.py).
    "axes",
    "accounts",
    "sessions_app",
    "messaging",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    # Before anything reads the body (CSRF reads POST).
    "kfadmin.middleware.RequestBodyLimitMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Django's LoginRequiredMiddleware; htmx requests get HX-Redirect to the login page.
    "kfadmin.middleware.HtmxLoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a lockout found during authentication into the login page's answer.
    "axes.middleware.AxesMiddleware",
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
            # {{ stored_text|sentence }} on every page: stored English, shown translated.
            "builtins": ["accounts.templatetags.sentences"],
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
# Axes first: it refuses a locked-out login before the password is hashed. Then
# ModelBackend, the per-request user read without the timestamps (accounts/backends.py).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "accounts.backends.KfAdminBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Login throttling (django-axes), on /login/ and /admin/login/ alike -------------
# A lockout is per username *and* address: someone guessing a supervisor's password
# locks out only themselves, from their address, while the supervisor still logs in
# from theirs. The lockout lasts LOGIN_LOCKOUT_MINUTES from the attempt that caused it;
# tries during it are refused unchecked and do not extend it, so a lock cannot be held
# by hammering. A successful login clears the count. Operators unlock early in the
# admin (Axes → Access attempts) or with `manage.py axes_reset_username NAME`.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "accounts.views.login_locked_out"
AXES_HTTP_RESPONSE_CODE = 429
# Behind reverse proxies the connection comes from the proxy: name how many append to
# X-Forwarded-For, so the client's own address is the one counted (0: the connection's).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if TRUSTED_PROXY_COUNT else ("REMOTE_ADDR",)
)

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
# History exports prepared in the background (messaging.services.export_job_run): the
# worker writes the file here and the web process serves it, so with workers on other
# machines this must be shared storage. Not under MEDIA_ROOT: every download is
# checked and audited by kfadmin, never served as a static file.
EXPORT_ROOT = Path(env_str("EXPORT_ROOT", str(VAR_DIR / "exports")))
# Hours a finished export can be downloaded; then the cleanup task deletes its file.
EXPORT_KEEP_HOURS = env_int("EXPORT_KEEP_HOURS", 24, minimum=1)
# An export of at most this many records streams straight from the request; a larger
# one (decided from the history page's capped count) becomes a background job.
EXPORT_STREAM_MAX_ROWS = env_int("EXPORT_STREAM_MAX_ROWS", 10_000, minimum=0)

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
# Up to this many agents an agent field is a plain drop-down; with more, a text field
# that suggests matching agents as one types (and accepts a kf account typed out).
AGENT_SELECT_MAX = env_int("AGENT_SELECT_MAX", 50, minimum=0)
# A poll whose region shows data that has not changed since is answered 204 from one
# cache read (accounts/live.py). Only safe when every process sees the same cache
# (the Celery worker's version bumps must reach the web processes): on by default
# exactly when CACHE_URL names Redis; off, every poll renders in full.
LIVE_VERSIONS = env_bool("LIVE_VERSIONS", SHARED_CACHE)
# A region's token older than this is answered with a full render even if no data
# changed: what the passage of time alone changes (a wait turning long, a late sync,
# a new day's counters) shows within this delay.
LIVE_RECHECK_SECONDS = env_int("LIVE_RECHECK_SECONDS", 60, minimum=5)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie

# --- Transport security ------------------------------------------------------------
# Secure cookies follow DEBUG unless SECURE_COOKIES says otherwise.
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind a TLS-terminating proxy: the header it sets, e.g. "X-Forwarded-Proto: https".
# Set it only when the proxy always sets or strips that header.
SECURE_PROXY_SSL_HEADER = proxy_ssl_header("SECURE_PROXY_SSL_HEADER")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Load balancers probe the health check over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy (django-csp): scripts, styles, images and fonts from this site
# only; no inline script or style (htmx's own indicator style is switched off in
# base.html, bars are <meter>/<progress>). Avatars come from WeChat's image host (or
# the emulator), and the avatar preview shows the chosen file from a blob: URL.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:", "https:", "http:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Request size ---------------------------------------------------------------------
# Django caps form fields (DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB by default) but not
# files; RequestBodyLimitMiddleware answers 413 above this (the largest upload is a
# video for WeChat, at most 10 MB). Uploads above FILE_UPLOAD_MAX_MEMORY_SIZE go to a temporary
# file instead of memory. Set the proxy's own limit (nginx client_max_body_size) too.
REQUEST_BODY_MAX_BYTES = 11 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# WeChat
WECHAT_API_BASE = env_http_url("WECHAT_API_BASE", "https://api.weixin.qq.com")
WECHAT_TIMEOUT = env_int("WECHAT_TIMEOUT", 10, minimum=1)
EMULATOR_PORT = env_int("EMULATOR_PORT", 8765, minimum=1)

# Celery
CELERY_BROKER_URL = broker_url("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's own filesystem transport loses messages and crashes its consumer when
    # several processes publish (kombu issue #1551); kfadmin.broker writes atomically.
    CELERY_BROKER_TRANSPORT = "kfadmin.broker:Transport"
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "failed_folder": str(_broker_dir / "failed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    for _folder in CELERY_BROKER_TRANSPORT_OPTIONS.values():
        if isinstance(_folder, str):
            Path(_folder).mkdir(parents=True, exist_ok=True)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Creates the schedule file's folder; kfadmin.beat also stops a worker whose beat died.
CELERY_BEAT_SCHEDULER = "kfadmin.beat:PersistentScheduler"

# --- Sync schedule and queues ---------------------------------------------------------
# Seconds between two runs of each periodic sync (per official account).
SYNC_ONLINE_SECONDS = env_int("SYNC_ONLINE_SECONDS", 15, minimum=5)
SYNC_QUEUE_SECONDS = env_int("SYNC_QUEUE_SECONDS", 15, minimum=5)
SYNC_AGENTS_SECONDS = env_int("SYNC_AGENTS_SECONDS", 300, minimum=15)
SYNC_SESSIONS_SECONDS = env_int("SYNC_SESSIONS_SECONDS", 60, minimum=15)
SYNC_HISTORY_SECONDS = env_int("SYNC_HISTORY_SECONDS", 300, minimum=60)
# The live tail: while an account has open sessions (or a conversation open in a
# browser), its newest chat records are read this often, since WeChat pushes a
# customer's in-session messages to its own kf client and not to the callback URL.
SYNC_TAIL_SECONDS = env_int("SYNC_TAIL_SECONDS", 5, minimum=2)
# The media library (permanent materials, published articles) changes rarely.
SYNC_LIBRARY_SECONDS = env_int("SYNC_LIBRARY_SECONDS", 900, minimum=60)
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
    # The reports' rollups: each stored page enqueues its own catch-up; this catches up
    # what an unreachable broker left pending.
    "sync-rollups": {
        "task": "reports.tasks.sync_rollups_sweep_task",
        "schedule": 60,
        "options": {"expires": 60},
    },
    # Exports past their keeping time lose their file; jobs whose worker died are failed.
    "export-cleanup": {
        "task": "messaging.tasks.export_cleanup_task",
        "schedule": 900,
        "options": {"expires": 900},
    },
    # Only accounts with open sessions or a watched conversation; each run claims the
    # account's tail row, so a slow run is skipped, never doubled.
    "sync-tail": {
        "task": "messaging.tasks.sync_all_tail_task",
        "schedule": SYNC_TAIL_SECONDS,
        "options": {"expires": SYNC_TAIL_SECONDS},
    },
    "sync-library": {
        "task": "messaging.tasks.sync_all_library_task",
        "schedule": SYNC_LIBRARY_SECONDS,
        "options": {"expires": SYNC_LIBRARY_SECONDS},
    },
    # Customers' media whose fetch task was lost (WeChat keeps them 3 days).
    "fetch-media-sweep": {
        "task": "messaging.tasks.fetch_media_sweep_task",
        "schedule": 300,
        "options": {"expires": 300},
    },
    # Messages queued while the broker was down, or whose worker died mid-send.
    "send-outbox-sweep": {
        "task": "messaging.tasks.send_outbox_sweep_task",
        "schedule": 30,
        "options": {"expires": 30},
    },
}

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Axes logs every login at INFO; its warnings (failures, lockouts) are kept.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The filesystem transport has no host; kombu warns about that on every connection.
    LOGGING["loggers"]["kombu.connection"] = {"level": "ERROR"}
