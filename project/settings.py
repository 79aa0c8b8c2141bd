"""Parley settings. Every knob is an environment variable, documented in README.md."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from project.env import (
    database_from_url,
    development_secret_key,
    envbool,
    envchoice,
    envfloat,
    envint,
    envlist,
    envsecret,
    envstr,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = envbool("DEBUG", False)

SECRET_KEY = envsecret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off (set SECRET_KEY or SECRET_KEY_FILE)"
        )
    SECRET_KEY = development_secret_key(BASE_DIR / ".parley-secret-key")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "axes",
    "providers",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files, compressed and with far-future caching for hashed names.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "chat.audit.AuditRequestMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "chat.middleware.ApprovedUserMiddleware",
    "chat.middleware.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "chat.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it turns a locked-out log-in into its lockout page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"
AUTH_USER_MODEL = "chat.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

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
                "chat.context_processors.js_strings",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(envstr("DATABASE_URL", "sqlite:///db.sqlite3"), base_dir=BASE_DIR)
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envstr("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub: one PUBLISH per frame, one subscription per process, fanned out
            # to that process's sockets in memory; chat.layers pipelines the publishes.
            # The list-based core layer needed several round trips per frame and per
            # socket, and saturated near 50 streams (docs/benchmarks.md).
            "BACKEND": "chat.layers.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py 8 defaults socket_timeout to 5 s, which killed
                        # channels-redis's 5 s blocking reads (channels_redis#422): set
                        # it explicitly, well past any blocking read; connecting gets its
                        # own, short budget.
                        "socket_timeout": envfloat("REDIS_SOCKET_TIMEOUT", 10.0, minimum=10.0),
                        "socket_connect_timeout": envfloat(
                            "REDIS_CONNECT_TIMEOUT", 3.0, minimum=0.1
                        ),
                        "socket_keepalive": True,
                        # A connection idle this long is PINGed before use, so a dead one
                        # is replaced instead of failing the next command.
                        "health_check_interval": 15,
                    }
                ],
                "prefix": envstr("REDIS_PREFIX", "parley"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "chat.layers.InMemoryChannelLayer"}}

# Shared by every process through Redis when there is one (sign-up throttling).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": envstr("REDIS_PREFIX", "parley"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Log-in throttling (django-axes): after LOGIN_FAILURE_LIMIT failures from one IP
# address, or for one username, log-ins are refused for LOGIN_LOCKOUT_MINUTES.
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "chat.views.locked_out"
AXES_VERBOSE = False
# Sign-ups allowed from one IP address per LOGIN_LOCKOUT_MINUTES (attempts count).
SIGNUP_RATE_LIMIT = envint("SIGNUP_RATE_LIMIT", 5, minimum=1)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
#: Chosen from the browser (Accept-Language), switchable in the page ("Language").
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Where collectstatic writes (and nginx, in deploy/, serves from).
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Cache-busted (content-hashed) and pre-compressed once `collectstatic` has run, which
# `make run` and the Dockerfile do; before that, files are served as they are.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "project.static.CompressedStaticFiles"},
}
WHITENOISE_USE_FINDERS = not (STATIC_ROOT / "staticfiles.json").exists()

# HTTPS. Behind a TLS-terminating proxy, set SECURE_COOKIES=true and
# SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https (the proxy must set that header).
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", SESSION_COOKIE_SECURE)
SECURE_HSTS_SECONDS = envint(
    "SECURE_HSTS_SECONDS", 31_536_000 if SESSION_COOKIE_SECURE else 0, minimum=0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
_proxy_header = envlist("SECURE_PROXY_SSL_HEADER", [])
if _proxy_header and len(_proxy_header) != 2:
    raise ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER must be a header and a value, e.g. HTTP_X_FORWARDED_PROTO,https"
    )
SECURE_PROXY_SSL_HEADER = (_proxy_header[0], _proxy_header[1]) if _proxy_header else None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO").upper()},
    "loggers": {
        # httpx logs every request URL at INFO; keep that out of normal logs.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# --- Parley ---------------------------------------------------------------

# /metrics answers this bearer token; unset, only direct requests from this machine.
METRICS_TOKEN = envsecret("METRICS_TOKEN")

# How long the audit log keeps entries (manage.py prune_audit_log deletes older ones).
AUDIT_RETENTION_DAYS = envint("AUDIT_RETENTION_DAYS", 365, minimum=1)

# Who may create an account after the first one (which becomes the admin).
SIGNUP_MODE = envchoice("SIGNUP_MODE", "approval", ("open", "approval", "closed"))

# Provider connections configured as code: each set creates or updates a connection
# (python manage.py sync_connections, also run after every migrate).
MINIMAX_API_KEY = envsecret("MINIMAX_API_KEY")
MINIMAX_BASE_URL = envstr("MINIMAX_BASE_URL", "https://api.minimax.io").rstrip("/")
CLOUDFLARE_API_TOKEN = envsecret("CLOUDFLARE_API_TOKEN")
CLOUDFLARE_ACCOUNT_ID = envstr("CLOUDFLARE_ACCOUNT_ID")
CLOUDFLARE_AI_GATEWAY = envstr("CLOUDFLARE_AI_GATEWAY")
CLOUDFLARE_BASE_URL = envstr("CLOUDFLARE_BASE_URL", "https://api.cloudflare.com/client/v4").rstrip(
    "/"
)
DASHSCOPE_API_KEY = envsecret("DASHSCOPE_API_KEY")
DASHSCOPE_WORKSPACE = envstr("DASHSCOPE_WORKSPACE")
DASHSCOPE_BASE_URL = envstr("DASHSCOPE_BASE_URL", "https://dashscope.aliyuncs.com/api/v1").rstrip(
    "/"
)
CLOUDSWAY_API_KEY = envsecret("CLOUDSWAY_API_KEY")
CLOUDSWAY_ENDPOINT_PATH = envstr("CLOUDSWAY_ENDPOINT_PATH").strip("/")
CLOUDSWAY_BASE_URL = envstr("CLOUDSWAY_BASE_URL", "https://genaiapi.cloudsway.net/v1/ai").rstrip(
    "/"
)
if CLOUDFLARE_API_TOKEN and not CLOUDFLARE_ACCOUNT_ID:
    raise ImproperlyConfigured("CLOUDFLARE_API_TOKEN is set, so CLOUDFLARE_ACCOUNT_ID is required")
if CLOUDSWAY_API_KEY and not CLOUDSWAY_ENDPOINT_PATH:
    raise ImproperlyConfigured("CLOUDSWAY_API_KEY is set, so CLOUDSWAY_ENDPOINT_PATH is required")
_ANY_PROVIDER_KEY = any(
    (MINIMAX_API_KEY, CLOUDFLARE_API_TOKEN, DASHSCOPE_API_KEY, CLOUDSWAY_API_KEY)
)

# Fernet keys for API keys stored in the database; the first encrypts, all decrypt.
ENCRYPTION_KEYS = envlist("ENCRYPTION_KEYS", [])

# Connections entered in the admin may only call public addresses unless this is set
# (connections from environment variables are the operator's own and always allowed).
UPSTREAM_ALLOW_PRIVATE = envbool("UPSTREAM_ALLOW_PRIVATE", False)

# Upstream timeouts, in seconds.
UPSTREAM_CONNECT_TIMEOUT = envfloat("UPSTREAM_CONNECT_TIMEOUT", 10.0, minimum=0.1)
UPSTREAM_FIRST_TOKEN_TIMEOUT = envfloat("UPSTREAM_FIRST_TOKEN_TIMEOUT", 90.0, minimum=0.1)
UPSTREAM_IDLE_TIMEOUT = envfloat("UPSTREAM_IDLE_TIMEOUT", 60.0, minimum=0.1)
UPSTREAM_TOTAL_TIMEOUT = envfloat("UPSTREAM_TOTAL_TIMEOUT", 900.0, minimum=1.0)
# How long an idle upstream connection is kept for the next reply (seconds; 0 opens a
# connection per reply).
UPSTREAM_KEEPALIVE_SECONDS = envfloat("UPSTREAM_KEEPALIVE_SECONDS", 30.0, minimum=0.0)

# The offline demo upstream: on by default in development when no key is set.
PARLEY_DEMO = envbool("PARLEY_DEMO", DEBUG and not _ANY_PROVIDER_KEY)
# Where the simulator listens; empty starts one inside this process on loopback.
DEMO_UPSTREAM_URL = envstr("DEMO_UPSTREAM_URL").rstrip("/")
#: The model a new chat starts on when its persona names none (a model name such as
#: "MiniMax-M2.7", or an option key). Empty: the newest general MiniMax model.
DEFAULT_MODEL = envstr("DEFAULT_MODEL", "")
DEMO_TOKENS_PER_SECOND = envfloat("DEMO_TOKENS_PER_SECOND", 40.0, minimum=0.1)
# Pad simulated answers to about this many tokens (0: their natural length).
DEMO_REPLY_TOKENS = envint("DEMO_REPLY_TOKENS", 0, minimum=0)

# Streaming: coalesce tokens into socket frames and batch database flushes.
REPLY_FRAME_INTERVAL = envfloat("REPLY_FRAME_INTERVAL", 0.05, minimum=0.0)
# How often, at most, a streaming reply looks for finished markdown blocks to render.
REPLY_SETTLE_INTERVAL = envfloat("REPLY_SETTLE_INTERVAL", 0.25, minimum=0.0)
#: Start a reply's upstream request while its message is being stored, when this
#: process knows what the request will be (chat.actions.early).
REPLY_EARLY_START = envbool("REPLY_EARLY_START", True)
#: After a conversation's first reply, ask its model for a short title in the background.
AUTO_TITLE = envbool("AUTO_TITLE", True)
#: The largest conversation file a user may import.
IMPORT_MAX_BYTES = envint("IMPORT_MAX_BYTES", 20 * 1024 * 1024, minimum=1024)

#: A socket that receives a reply's frames this long after they were published skips
#: them and catches up by one snapshot (chat.delivery).
SOCKET_LAG_LIMIT = envfloat("SOCKET_LAG_LIMIT", 1.0, minimum=0.05)
#: A socket holds back a reply's frames while this many characters it sent are not yet
#: acknowledged by the page (a client that stopped reading), and catches up by snapshot.
SOCKET_SEND_WINDOW = envint("SOCKET_SEND_WINDOW", 1024 * 1024, minimum=32 * 1024)
REPLY_FLUSH_INTERVAL = envfloat("REPLY_FLUSH_INTERVAL", 1.0, minimum=0.05)
# Every process touches the replies it is writing this often, in one statement...
REPLY_HEARTBEAT_INTERVAL = envfloat("REPLY_HEARTBEAT_INTERVAL", 2.0, minimum=0.1)
# ...and a reply not touched for this long lost its process: any process takes it over.
REPLY_STALE_AFTER = envfloat("REPLY_STALE_AFTER", 10.0, minimum=0.5)
if REPLY_STALE_AFTER < 3 * REPLY_HEARTBEAT_INTERVAL:
    raise ImproperlyConfigured(
        "REPLY_STALE_AFTER must be at least 3 x REPLY_HEARTBEAT_INTERVAL "
        f"({3 * REPLY_HEARTBEAT_INTERVAL:g} s), got {REPLY_STALE_AFTER:g} s"
    )
# On SIGTERM, running replies get this long to finish before they are saved as interrupted.
REPLY_SHUTDOWN_GRACE = envfloat("REPLY_SHUTDOWN_GRACE", 25.0, minimum=0.0)
# How long saving a reply's text keeps retrying through a database outage.
REPLY_SAVE_RETRY_FOR = envfloat("REPLY_SAVE_RETRY_FOR", 30.0, minimum=0.0)
# Run the heartbeat and the orphan reaper in this process (tests switch it off).
REPLY_SUPERVISOR = envbool("REPLY_SUPERVISOR", True)
