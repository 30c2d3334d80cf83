"""Settings for the manifest dashboard, driven by environment variables.

One file, no dev/prod split: defaults make a fresh checkout run (SQLite in the
checkout, Redis on localhost); deployments and tests override through the
environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_secret(name: str, default: str | None = None) -> str | None:
    """A secret from the file named by NAME_FILE, or from NAME itself."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def local_secret(name: str) -> str:
    """A secret `make run` generated under var/ for a local checkout, if any."""
    path = BASE_DIR / "var" / f"{name}.key"
    return path.read_text().strip() if path.exists() else ""


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret("SECRET_KEY") or local_secret("secret") or None
if not SECRET_KEY:
    if not (DEBUG or env_bool("ALLOW_INSECURE_KEY", True)):
        raise ImproperlyConfigured("SECRET_KEY is required")
    SECRET_KEY = "insecure-key-for-a-local-checkout-only"

# Keys for encrypting registry credentials at rest (Fernet: url-safe base64 of
# 32 bytes). CREDENTIALS_KEY (or _FILE) is the current key; CREDENTIALS_KEYS
# may list older ones after it, comma separated: the first encrypts, all
# decrypt, and `manage.py credentials_rotate` re-encrypts with the first.
CREDENTIALS_KEYS = [
    key for key in [env_secret("CREDENTIALS_KEY") or local_secret("credentials"), *env_list("CREDENTIALS_KEYS", "")]
    if key
]

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "manifests",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "manifests.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "config.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server and workers share the file: WAL lets readers go on while a
    # worker writes, IMMEDIATE transactions avoid lock upgrades that fail.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    if os.environ.get("TEST_DATABASE_NAME"):
        DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Only for `collectstatic`; whitenoise serves static/ through the finders.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
# Serve static/ straight from the source folders: nothing to collect for a run.
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "manifests-registry-list"
LOGOUT_REDIRECT_URL = "login"

SECURE_HTTPS = env_bool("SECURE_HTTPS", False)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if SECURE_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A killed worker's task goes back to the queue and runs again; every task is
# written to be idempotent for that reason.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task whose worker died is delivered again after the visibility timeout
# (longer than any push or scan may take); workers look for such tasks every
# CELERY_RESTORE_INTERVAL seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 900),
    "unacked_restore_interval": env_int("CELERY_RESTORE_INTERVAL", 10),
    "unacked_restore_throttle": 1,
}
# A push or rollback runs on one worker at a time: its worker renews a lease
# (a heartbeat on the job row) every quarter of this; a second delivery waits
# while the lease is fresh, and takes the job over once it is not.
JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 60)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE = {
    "rescan-registries": {
        "task": "manifests.tasks.registries_rescan",
        "schedule": env_int("SCAN_INTERVAL_SECONDS", 900),
    },
}

# Registry client defaults.
REGISTRY_TIMEOUT_SECONDS = env_int("REGISTRY_TIMEOUT_SECONDS", 15)
REGISTRY_CONCURRENCY = env_int("REGISTRY_CONCURRENCY", 4)

# Whole-registry scans HEAD the children of lists not checked for this long
# (one HEAD per distinct child), so a child deleted under a list is noticed.
CHILDREN_CHECK_SECONDS = env_int("CHILDREN_CHECK_SECONDS", 86400)
# At most this many lists per repository get their children checked in one scan.
CHILDREN_CHECK_LISTS = env_int("CHILDREN_CHECK_LISTS", 200)

# Ask the OCI 1.1 referrers API about manifests a scan sees for the first time
# (a request each; off by default: Distribution 2.8 serves no such API, and the
# referrers tag schema and cosign's tags cost nothing beyond the tag listing).
REFERRERS_API = env_bool("REFERRERS_API", False)

# Notifications: links in events point at SITE_URL; each attempt has a
# timeout; a delivery is given up after NOTIFY_MAX_ATTEMPTS (with backoff).
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")
NOTIFY_TIMEOUT_SECONDS = env_int("NOTIFY_TIMEOUT_SECONDS", 10)
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 8)

# Email channels send through SMTP with Django's settings.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "manifest-dashboard@localhost")

# Token that Docker Distribution's notifications endpoint sends as a bearer.
WEBHOOK_TOKEN = env_secret("WEBHOOK_TOKEN") or local_secret("webhook")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # urllib3 logs full URLs at DEBUG; keep it quiet so nothing that
        # looks like a credential reaches a log.
        "urllib3": {"level": "WARNING"},
    },
}
