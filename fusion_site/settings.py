"""Settings for the Fusion back office.

Configuration comes from environment variables only (django-environ); `.env.example` lists them all.
With nothing set, the product runs embedded: SQLite, in-process tasks, a generated local key file.
"""

import datetime
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONE, SELF
from kombu import Queue

from fusion_site.local_keys import load_or_create_local_keys

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "testserver"])

_local_keys = load_or_create_local_keys(BASE_DIR / ".local" / "keys.env") if DEBUG else {}
if not SECRET_KEY:
    SECRET_KEY = _local_keys.get("DJANGO_SECRET_KEY", "")
# Newest key first: the first encrypts, every key decrypts (see fusion_site.crypto).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[]) or _local_keys.get(
    "FIELD_ENCRYPTION_KEYS", ""
).split(",")
BLIND_INDEX_KEY = env("BLIND_INDEX_KEY", default="") or _local_keys.get("BLIND_INDEX_KEY", "")
# The audit trail's HMAC keys (accounts.audit_keys), newest first: the first signs new events, every key
# verifies the events signed with it. Never stored in the database, so writing to the database is not
# enough to forge the trail. Keep an old key configured while any event signed with it exists.
AUDIT_HMAC_KEYS = env.list("AUDIT_HMAC_KEYS", default=[]) or _local_keys.get("AUDIT_HMAC_KEYS", "").split(",")
# Nightly signed checkpoints of the audit chain's head (accounts.audit_checkpoints), outside the database.
# In production this directory belongs to the user the Celery worker and beat run as (mode 0700), and the
# web process's user can neither write nor replace anything in it.
AUDIT_CHECKPOINT_DIR = Path(
    env("AUDIT_CHECKPOINT_DIR", default="") or BASE_DIR / ".local" / "audit-checkpoints"
)
# The erasure journal (privacy.erasure_journal): a signed entry per completed erasure, outside the database,
# so erasures done after a backup are re-applied after restoring it (manage.py reapply_erasures). Same
# discipline as the checkpoints: the jobs user's (mode 0700), backed up apart from the database. Unset (in
# development), an "erasure-journal" folder beside AUDIT_CHECKPOINT_DIR.
ERASURE_JOURNAL_DIR = env("ERASURE_JOURNAL_DIR", default="")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "guardian",
    "simple_history",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "fusion_site",
    "accounts",
    "billing",
    "privacy",
]

MIDDLEWARE = [
    # First: every later middleware's log lines carry the request's id (fusion_site/request_id.py).
    "fusion_site.request_id.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # django-otp's, with the session's device read by SQL compiled once per process.
    "accounts.security.OTPMiddleware",
    # After authentication: an idle session is ended before anything else looks at the user.
    "accounts.security.IdleSessionTimeoutMiddleware",
    "accounts.security.RequireSecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "fusion_site.urls"
WSGI_APPLICATION = "fusion_site.wsgi.application"

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
                "fusion_site.navigation.menu",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
_postgresql = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
# The reads compiled once per process are prepared on each PostgreSQL connection and sent as EXECUTE
# (fusion_site/compiled_reads.py); false behind a pooler that shares server connections (PgBouncer in
# transaction mode).
PREPARED_READS = _postgresql and env.bool("DATABASE_PREPARED_READS", default=True)
if _postgresql and not env.bool("DATABASE_JIT", default=False):
    # PostgreSQL's JIT compiles a statement whose estimated cost passes jit_above_cost: right for long
    # reports, but a page's queries are milliseconds, and the permission-scoped list of a large partner
    # is estimated high enough to spend 25-30 ms compiling a 6 ms query (bench/load.py). The bill run's
    # chunks and the call import already turn it off for their transactions; DATABASE_JIT=true keeps it.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
# A file for the test database instead of SQLite's in-memory one, so `pytest --reuse-db` keeps it between
# runs: `make mutation` runs the tests once per mutant and would otherwise migrate afresh each time.
if test_database_name := env.str("DATABASE_TEST_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": test_database_name}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
CACHES = {
    "default": (
        # Django's Redis cache, with a redis-py client kept per pool rather than made per call.
        {"BACKEND": "fusion_site.redis_cache.ReusedClientRedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Sessions are read from Redis when it is configured, and still written to the database (the data map's
# record of them, and what `clearsessions` and logout delete): reading the session row was a query on
# every page (bench/load.py). A session's cached copy expires with the session.
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cached_db" if REDIS_URL else "django.contrib.sessions.backends.db"
)

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out username or address is refused before its password is even checked.
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend, reading the role permissions in one statement (accounts/backends.py).
    "accounts.backends.RolePermissionsBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# Guardian's anonymous user would be a row in the user table with no email; nobody anonymous sees data.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Every login (staff and portal) needs a second factor: a TOTP device, or one of its recovery codes.
# There is deliberately no setting that switches this off (see accounts.security).
OTP_TOTP_ISSUER = "Fusion back office"
OTP_LOGIN_URL = "accounts:otp_verify"
RECOVERY_CODE_COUNT = 10
# Nobody, administrators included, can read another user's TOTP secret or QR code in the admin.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# django-axes: AXES_FAILURE_LIMIT failures lock the username, from every address, for AXES_COOLOFF_MINUTES
# (an administrator can unlock sooner in the admin, under Axes > Access attempts). Not the address: axes
# has one limit for every lockout parameter, and at five one person's typos locked the whole office behind
# it. Nor the (username, address) pair: at the same limit the username's lock always covers it.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = ["username"]
# An address is throttled (every login from it refused, and the administrators alerted) only for password
# spraying: LOGIN_ADDRESS_FAILURE_LIMIT failures within the cool-off, counting at most AXES_FAILURE_LIMIT
# per username, so at ten usernames or more by default (accounts.lockout).
AXES_HANDLER = "accounts.lockout.AddressThrottlingHandler"
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=50)
# Axes warns when the address is not among its lockout parameters, since then nothing limits one address
# guessing at many usernames; the handler above does (tests/security/test_lockout.py guards it).
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
# The login form's field (and authenticate()'s keyword) is "username", though it holds the email; axes
# would otherwise look for "email" and count every failure against no username at all.
AXES_USERNAME_FORM_FIELD = "username"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# Successful logins are in the audit trail already; axes keeps only what lockout needs (AccessAttempt).
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ACCESS_FAILURE_LOG = False

# Idle timeout: a staff session ends after this long without a request (each request refreshes it).
STAFF_SESSION_IDLE_SECONDS = env.int("STAFF_SESSION_IDLE_SECONDS", default=15 * 60)
PORTAL_SESSION_IDLE_SECONDS = env.int("PORTAL_SESSION_IDLE_SECONDS", default=30 * 60)
# The absolute cap on any session, however active.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 60 * 60)
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
# Production serves what `manage.py collectstatic` put in STATIC_ROOT, through WhiteNoise, under names
# that carry a hash of the content (so browsers cache them for ever) and with gzip and Brotli copies. A
# {% static %} of a file that collectstatic did not collect is an error there, not a broken link.
# Development and the tests keep Django's plain storage, which needs no collectstatic.
STATIC_MANIFEST = env.bool("DJANGO_STATIC_MANIFEST", default=not DEBUG)
if STATIC_MANIFEST:
    # Served by the web process itself (behind the proxy): right after the HTTPS redirect, before anything
    # that reads the session. Development serves them with runserver as before, from the app folders.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Private files (uploaded call records while they are imported); never served by the web server.
MEDIA_ROOT = env("DJANGO_MEDIA_ROOT", default=str(BASE_DIR / ".local" / "media"))

# Mail: to the public (double opt-in, verification links), to data subjects (notices, identity codes),
# to the DPO (reminders) and administrators (alerts). The embedded default prints mails to the console.
EMAIL_BACKEND = env(
    "DJANGO_EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env("DJANGO_EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("DJANGO_EMAIL_PORT", default=25)
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", default="Fusion Telecom <no-reply@fusion.example>")
# Where this site is reached from outside, for links in emails (no trailing slash).
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")

# Transport and browser. Production (DJANGO_DEBUG=false) always gets TLS-only cookies, HSTS and the
# redirect to HTTPS; `manage.py check --deploy` passes with no warnings there (tests/test_security_settings).
PRODUCTION = not DEBUG
SECURE_SSL_REDIRECT = PRODUCTION
SECURE_HSTS_SECONDS = 365 * 24 * 60 * 60 if PRODUCTION else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
# The health probes answer on plain HTTP too: systemd, a load balancer or CI ask the web process directly.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION or env.bool("DJANGO_SECURE_COOKIES", default=False)
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
# A refused form gets the 403 page of the layout, not Django's unstyled one.
CSRF_FAILURE_VIEW = "fusion_site.error_views.csrf_failure"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# No inline script or style anywhere (templates keep theirs in static/); QR codes are inline SVG markup.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# Celery: configured under the CELERY namespace (fusion_site/celery.py). With no broker the tasks run
# in-process, so the embedded default needs no Redis.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL or None)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=25 * 60)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
# One queue per kind of work, so a deployment can give each its own workers: a long call import or
# retention run never holds up a bill run's chunks, and mail (the breach clock's reminders among it)
# never waits behind either. `make worker` consumes them all; `make worker QUEUES=imports` one.
CELERY_QUEUE_NAMES = ("imports", "bill_runs", "privacy", "mail", "default")
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in CELERY_QUEUE_NAMES]
CELERY_TASK_DEFAULT_QUEUE = "default"
# The first pattern that matches a task's name wins (Celery tries exact names, then the globs in order),
# and a task that none matches goes to the default queue. tests/test_celery_queues.py checks that every
# registered task lands in one of the queues above.
CELERY_TASK_ROUTES = {
    "billing.tasks.import_*": {"queue": "imports"},
    # DDL on the call records, beside the imports that write them.
    "billing.tasks.call_partitions_*": {"queue": "imports"},
    "billing.tasks.calculate_bill_run*": {"queue": "bill_runs"},
    "*.tasks.send_*": {"queue": "mail"},
    # Journal entries are written seconds after an erasure, not behind a retention run of hours.
    "privacy.tasks.write_erasure_journal": {"queue": "default"},
    "privacy.tasks.reconcile_erasure_journal": {"queue": "default"},
    "privacy.tasks.*": {"queue": "privacy"},
}
# Static beat schedule, in code (one beat per deployment runs it); every entry is idempotent, so a
# missed or doubled run does no harm.
CELERY_BEAT_SCHEDULE = {
    # Before the working day's Direct Debit exports: lodged mandates past their lodgement period become
    # active, those dormant 13 months expire.
    "direct-debit-mandates": {
        "task": "billing.tasks.direct_debit_mandates_daily",
        "schedule": crontab(hour=5, minute=40),
    },
    # Advance notices of runs finalised and not yet exported, so collections keep the promised date.
    "direct-debit-notices": {
        "task": "billing.tasks.send_direct_debit_notices_daily",
        "schedule": crontab(hour=7, minute=10),
    },
    # Returns "refer to payer" that can no longer be re-presented in time are left to dunning, before it.
    "direct-debit-representations": {
        "task": "billing.tasks.direct_debit_representations_lapse_daily",
        "schedule": crontab(hour=7, minute=40),
    },
    # Dunning: reminders, final notices and suspensions of customers who have not paid, after the
    # Direct Debit notices and in the working morning (emails read the same day; orders reach the gateway
    # in its hours). Idempotent: a second run the same day takes no step twice.
    "dunning": {
        "task": "billing.tasks.dunning_daily",
        "schedule": crontab(hour=8, minute=5),
    },
    # Invoice emails still unsent an hour after their last try (a lost task, or retries spent while the
    # mail server was down) are queued again; a delivery sends at most once whatever runs it.
    "invoice-emails": {
        "task": "billing.tasks.invoice_emails_sweep",
        "schedule": crontab(minute=25),
    },
    # The call records' monthly partitions on PostgreSQL, created months ahead of their calls; daily, so
    # a missed night is no matter.
    "call-partitions-ahead": {
        "task": "billing.tasks.call_partitions_ahead_daily",
        "schedule": crontab(hour=1, minute=5),
    },
    "verify-audit-chain": {
        "task": "accounts.tasks.verify_audit_chain_nightly",
        "schedule": crontab(hour=2, minute=15),
    },
    # After the verification, so a head already tampered with is reported rather than signed.
    "audit-checkpoint": {
        "task": "accounts.tasks.write_audit_checkpoint_nightly",
        "schedule": crontab(hour=2, minute=45),
    },
    # Erasures whose journal entry a lost task never wrote get it now; files that do not verify are logged.
    "privacy-erasure-journal": {
        "task": "privacy.tasks.reconcile_erasure_journal",
        "schedule": crontab(minute=50),
    },
    "privacy-deadline-reminders": {
        "task": "privacy.tasks.send_deadline_reminders",
        "schedule": crontab(hour=6, minute=30),
    },
    # Impact assessments whose review is near or whose activity changed since sign-off; each reminder once.
    "privacy-assessment-reminders": {
        "task": "privacy.tasks.send_assessment_reminders",
        "schedule": crontab(hour=6, minute=40),
    },
    # Hourly, so an export's file outlives its expiry by at most an hour.
    "privacy-purge-expired-data-exports": {
        "task": "privacy.tasks.purge_expired_data_exports",
        "schedule": crontab(minute=17),
    },
    # Nightly, after the evening's bill runs and before the working day; level-triggered, so a missed
    # night is caught up by the next.
    "privacy-retention": {
        "task": "privacy.tasks.run_retention",
        "schedule": crontab(hour=2, minute=15),
    },
    # The 72-hour clock of each open breach: reminders 24 h and 48 h after awareness, and at 72 h, each
    # once; every quarter of an hour, so a reminder is at most 15 minutes late.
    "privacy-breach-reminders": {
        "task": "privacy.tasks.send_breach_reminders",
        "schedule": crontab(minute="*/15"),
    },
    # A retention run whose worker died shows as abandoned within this and RETENTION_LOCK_TTL_SECONDS.
    "privacy-retention-abandoned-runs": {
        "task": "privacy.tasks.abandon_lapsed_retention_runs",
        "schedule": crontab(minute="*/10"),
    },
}
# Redis redelivers a task whose worker died without acknowledging it after this many seconds (Kombu's
# default, an hour). A task still running then is delivered twice: the retention run's lock makes the
# second wait for the first, and the tests shorten it to see a killed worker's task redelivered.
# Kombu looks for such tasks every interval x throttle seconds (10 x 10 by default).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=10),
    "unacked_restore_throttle": env.int("CELERY_UNACKED_RESTORE_THROTTLE", default=10),
}

# Call import: a partner's switch clock may run this many seconds ahead of ours; a call that starts (or
# ends) later than now plus this is rejected as in the future.
CALL_IMPORT_CLOCK_SKEW_SECONDS = env.int("CALL_IMPORT_CLOCK_SKEW_SECONDS", default=300)
# A bill run bills calls no earlier run billed from this many months before its period, not older: the
# bound keeps a run to those of the call records' monthly partitions (billing.calculation). 11 reaches every
# call retention still keeps unbilled (a never-billed call goes 12 months after it was made), so no kept call
# is left unbilled by the bound; and it stays below 12, so a billed call deleted by retention (12 months
# after its invoice) and imported again from an old file is out of every later run's reach, never billed
# twice. A smaller value reads fewer partitions but leaves a call rated later than that unbilled.
BILL_RUN_LATE_CALL_MONTHS = env.int("BILL_RUN_LATE_CALL_MONTHS", default=11)

# The provisioning gateway adapter (accounts.gateways); the default simulates a WLR gateway locally.
PROVISIONING_GATEWAY = env("PROVISIONING_GATEWAY", default="accounts.gateways.SimulatedWlrGateway")
# How long GDPR training stays current.
GDPR_TRAINING_VALID_DAYS = env.int("GDPR_TRAINING_VALID_DAYS", default=365)
# Data portability exports: days a built file is kept, and seconds a download link stays valid.
PRIVACY_EXPORT_RETENTION_DAYS = env.int("PRIVACY_EXPORT_RETENTION_DAYS", default=7)
PRIVACY_EXPORT_LINK_MAX_AGE = env.int("PRIVACY_EXPORT_LINK_MAX_AGE", default=24 * 60 * 60)

# The nightly reminder lists privacy requests overdue or due within this many days.
PRIVACY_REMINDER_DAYS = env.int("PRIVACY_REMINDER_DAYS", default=7)
# The DPO is reminded of an impact assessment's review this many days before its review date (once).
DPIA_REVIEW_REMINDER_DAYS = env.int("DPIA_REVIEW_REMINDER_DAYS", default=30)

# Retention (privacy.retention). A customer who owes money (ledger balance above zero) is kept until the
# balance is paid or written off (billing.personal_data).
# Customers erased per chunk (one transaction each); rows deleted per chunk for bulk categories.
RETENTION_CHUNK_SIZE = env.int("RETENTION_CHUNK_SIZE", default=200)
RETENTION_ROW_BATCH = env.int("RETENTION_ROW_BATCH", default=5000)
# The run's lease on the lock, renewed after every chunk: a killed run's lease lapses after this long.
RETENTION_LOCK_TTL_SECONDS = env.int("RETENTION_LOCK_TTL_SECONDS", default=600)
# A pause between chunks, to spare the database during the working day if a run is started by hand.
RETENTION_CHUNK_PAUSE_SECONDS = env.float("RETENTION_CHUNK_PAUSE_SECONDS", default=0.0)

# Alerts on unusual access (accounts.alerts) go to the DPO and administrators by email.
ALERT_REVEALS_PER_WINDOW = env.int("ALERT_REVEALS_PER_WINDOW", default=20)
ALERT_EXPORTS_PER_WINDOW = env.int("ALERT_EXPORTS_PER_WINDOW", default=5)
ALERT_WINDOW_MINUTES = env.int("ALERT_WINDOW_MINUTES", default=10)
# Whom a data subject told of a personal data breach should contact (the draft notices name it).
BREACH_CONTACT = env("BREACH_CONTACT", default="the Data Protection Officer, dpo@fusion.example")
ALERT_LOCKOUTS_PER_DAY = env.int("ALERT_LOCKOUTS_PER_DAY", default=3)

# Every handler redacts personal data (emails, phone numbers, postcodes, bank details) from what it writes;
# fusion_site.log_redaction also redacts records as they are made, so handlers added later (a test's
# caplog, an APM agent) never see the plaintext either.
# Production writes JSON lines (fusion_site/log_format.py) for a log pipeline to parse; development
# plain text. Either way each line carries the request id (fusion_site/request_id.py), "-" outside one.
LOG_FORMAT = env("DJANGO_LOG_FORMAT", default="text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"DJANGO_LOG_FORMAT is {LOG_FORMAT!r}: it must be json or text.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_personal_data": {"()": "fusion_site.log_redaction.RedactPersonalDataFilter"},
        "request_id": {"()": "fusion_site.request_id.RequestIdFilter"},
    },
    "formatters": {
        "json": {"()": "fusion_site.log_format.JsonLinesFormatter"},
        "text": {"format": "%(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["redact_personal_data", "request_id"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # WeasyPrint (PDF documents) logs each rendering step, and each screen-only CSS property it does not
        # know (the charts' SVG fill), on every document; fusion_site.pdf logs what matters (a refused URL).
        "weasyprint": {"level": "ERROR"},
    },
}

if not DEBUG:
    from django.core.exceptions import ImproperlyConfigured

    # The checkpoint and erasure journal directories too: their development defaults lie inside the code,
    # which the web process may be able to write.
    _missing = [
        name
        for name in (
            "DJANGO_SECRET_KEY",
            "FIELD_ENCRYPTION_KEYS",
            "BLIND_INDEX_KEY",
            "AUDIT_HMAC_KEYS",
            "AUDIT_CHECKPOINT_DIR",
            "ERASURE_JOURNAL_DIR",
        )
        if not env(name, default="")
    ]
    if _missing:
        # All of them at once, so a first deployment is not a round trip per variable.
        raise ImproperlyConfigured(f"{', '.join(_missing)} must be set when DJANGO_DEBUG is off.")
