"""gunicorn's configuration for the web process (`make serve`, deploy/systemd/fusion-web.service).

Everything a deployment changes comes from the environment, like the rest of the settings:
GUNICORN_BIND (default 127.0.0.1:8000: the TLS proxy in front is the only client), GUNICORN_WORKERS
(default 2 x cores + 1), GUNICORN_THREADS, GUNICORN_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT and
GUNICORN_MAX_REQUESTS (default 20000: see max_requests below). Sync workers
by default: the pages are short database work, and the long jobs run in Celery. GUNICORN_THREADS above 1
gives each worker that many threads (gunicorn's gthread worker), so a worker waiting on PostgreSQL serves
another request meanwhile; bench/load.py measures both (bench/README.md).
"""

import multiprocessing
import os

wsgi_app = "fusion_site.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
# A request still running after this many seconds is killed (a call import's upload is the longest).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On SIGTERM (a restart, `systemctl stop`) a worker finishes its request for up to this long.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# A worker is replaced after about this many requests (GUNICORN_MAX_REQUESTS, a tenth either way so
# the workers are not replaced together), so that a slow leak cannot grow without bound. Each new worker
# loads the whole application again (Django, Celery, every app): 2.3-2.6 s of CPU on the benchmark's
# machine, so at 2,000 requests it cost every request about 1.2 ms, as much as the minimal view itself,
# and took a worker away for seconds every few seconds under bench/load.py; at 20,000, about 0.12 ms.
# 0 turns replacement off (bench/load.py, for steady-state figures).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = max_requests // 10
# No access log here: the proxy's has every request with its X-Request-ID (and the client's address, which
# is personal data this log need not hold); the application's lines carry the same id. gunicorn's own
# messages go to stderr (the journal) as JSON lines like the application's, or text in development.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "fusion_site.log_format.JsonLinesFormatter"},
        "text": {"format": "%(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": os.environ.get("DJANGO_LOG_FORMAT", "json"),
            "stream": "ext://sys.stderr",
        },
        "nowhere": {"class": "logging.NullHandler"},
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": ["nowhere"], "level": "CRITICAL", "propagate": False},
    },
}
# systemd stops and reloads the server with signals; no runtime control socket in a home directory that
# the service user does not have (ignored by gunicorn before 24, which had none).
control_socket_disable = True
# Only the proxy on this machine may set X-Forwarded-For / -Proto.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Load the application once in the arbiter (faster start, less memory through copy-on-write). A broken
# configuration then fails at start-up rather than in every worker.
preload_app = True
