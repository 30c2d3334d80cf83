"""gunicorn settings for the image: everything from the environment."""

from __future__ import annotations

import os

from config.logs import logging_config

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Access lines only when asked (ACCESS_LOG=true): a line per htmx poll is noise for most teams.
access_log = os.environ.get("ACCESS_LOG", "false") == "true"
accesslog = "-" if access_log else None
logconfig_dict = logging_config(gunicorn=True, access_log=access_log)
# No control socket: nothing drives gunicorn at run time but signals.
control_socket_disable = True
