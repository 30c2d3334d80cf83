"""Settings for the manifest dashboard, driven by environment variables.

One file, no dev/prod split: defaults make a fresh checkout run (SQLite in the
checkout, Redis on localhost); deployments and tests override through the
environment.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.logs import log_format, logging_config

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
# -- security: keys, logins, transport (see also the webhook below) ------------
# No key in the code: SECRET_KEY (or _FILE), else the one `make run` writes to
# var/secret.key. With DEBUG on and neither, a random key for this process
# only (sessions end with it); with DEBUG off, no start at all.
SECRET_KEY = env_secret("SECRET_KEY") or local_secret("secret") or None
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required (set SECRET_KEY or SECRET_KEY_FILE; `make run` writes var/secret.key)")
    import secrets as _secrets

    SECRET_KEY = _secrets.token_urlsafe(50)

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
    "axes",
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
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
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
                "manifests.context_processors.queue_state",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_secret("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # A connection kept a minute, checked before each request reuses it: a page on PostgreSQL no
        # longer pays a new connection (and its authentication) each time.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
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
# A checkout serves static/ straight from the source folders (nothing to
# collect); the image collects them into STATIC_ROOT at build time and serves
# those, compressed.
WHITENOISE_USE_FINDERS = STATIC_ROOT is None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

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
# Strict-Transport-Security, only when the site is served over https.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000) if SECURE_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)

# Failed logins are throttled by django-axes, per username and client address
# together (so one user's typos lock out neither other users nor the address):
# LOGIN_FAILURE_LIMIT failures lock that pair out for LOGIN_LOCKOUT_MINUTES;
# a successful login forgets the failures. The lockout is the login page with
# a message (manifests.views.site.login_locked_out), answered 429.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "manifests.views.site.login_locked_out"

REDIS_URL = env_secret("REDIS_URL") or "redis://127.0.0.1:6379/0"

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
# A whole registry request ends within this, however slowly the registry trickles its answer.
REGISTRY_DEADLINE_SECONDS = env_int("REGISTRY_DEADLINE_SECONDS", 300)
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


# Docker Distribution's notifications authenticate with the registry's own
# token (`webhook_token NAME`, or the registry's page). WEBHOOK_TOKEN, a token
# accepted for every registry, only when a deployment sets it explicitly.
WEBHOOK_TOKEN = env_secret("WEBHOOK_TOKEN") or ""
# Events handled per notification request; the rest are ignored and logged.
WEBHOOK_MAX_EVENTS = env_int("WEBHOOK_MAX_EVENTS", 100)

# -- metrics ---------------------------------------------------------------
# GET /metrics answers only with `Authorization: Bearer METRICS_TOKEN`; unset, it is off (404).
METRICS_TOKEN = env_secret("METRICS_TOKEN") or ""

# -- logging ---------------------------------------------------------------
# Text by default; LOG_FORMAT=json writes one JSON object per line (config/logs.py).
LOGGING = logging_config()
if log_format() == "json":
    # Celery would install its own text handler on the root logger.
    CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# -- sign-in with OpenID Connect (manifests/oidc.py) -------------------------
# Off unless OIDC_RP_CLIENT_ID is set; local accounts keep working beside it.
# The provider's endpoints are given one by one (its discovery document
# lists them). Register the redirect URI https://<dashboard>/oidc/callback/.
OIDC_RP_CLIENT_ID = os.environ.get("OIDC_RP_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env_secret("OIDC_RP_CLIENT_SECRET") or ""
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = os.environ.get("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = os.environ.get("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_RP_SIGN_ALGO = os.environ.get("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = os.environ.get("OIDC_RP_SCOPES", "openid email profile")
OIDC_PROVIDER_NAME = os.environ.get("OIDC_PROVIDER_NAME", "single sign-on")
# The claim whose values map to roles ("groups", "roles", ...), the mapping
# ("dash-admins=admin,dash-ci=pusher,staff=viewer"; the highest role wins),
# the role of a user none of whose values maps ("" refuses the sign-in), the
# claim whose values name push groups (Django groups some registry restricts
# pushes to), and the claim that names a new user.
OIDC_ROLES_CLAIM = os.environ.get("OIDC_ROLES_CLAIM", "groups")
OIDC_ROLE_MAP = os.environ.get("OIDC_ROLE_MAP", "")
OIDC_DEFAULT_ROLE = os.environ.get("OIDC_DEFAULT_ROLE", "")
OIDC_GROUPS_CLAIM = os.environ.get("OIDC_GROUPS_CLAIM", OIDC_ROLES_CLAIM)
OIDC_USERNAME_CLAIM = os.environ.get("OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_USE_PKCE = True
LOGIN_REDIRECT_URL_FAILURE = "/login/"
TEMPLATES[0]["OPTIONS"]["context_processors"].append("manifests.oidc.oidc_context")
if OIDC_RP_CLIENT_ID:
    AUTHENTICATION_BACKENDS += ["manifests.oidc.RoleMappingBackend"]  # after axes and the model backend
