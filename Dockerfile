# The dashboard: one image for the web server, the Celery worker and the
# scheduler (see docker/entrypoint.sh for the commands).
#   docker build -t manifest-dashboard .
# Configured only through the environment: see .env.example and compose.yaml.

# -- build: a virtualenv with requirements.txt only, and the collected static files
FROM debian:bookworm-slim AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# pip trusts Debian's CA store, so a CA added the Debian way (a .crt in
# /usr/local/share/ca-certificates, e.g. a TLS-inspecting proxy's) counts.
RUN PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -q -r /tmp/requirements.txt \
    && /opt/venv/bin/python -m pip uninstall -y -q pip setuptools \
    && find /opt/venv -name '*.po' -delete \
    && find /opt/venv -type d -name LC_MESSAGES -prune -exec rm -rf {} +  # translations: USE_I18N is off
COPY . /app
WORKDIR /app
RUN SECRET_KEY=collectstatic-only DATABASE_URL=sqlite:///:memory: STATIC_ROOT=/app/staticfiles \
    /opt/venv/bin/python manage.py collectstatic --noinput -v 0 \
    && /opt/venv/bin/python -m compileall -q config manifests registry

# -- runtime: Debian's Python, the venv and the code, as an unprivileged user
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin dashboard
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# The only folder the app writes: CA bundles of registries (var/ca).
RUN install -d -o dashboard -g dashboard -m 700 /app/var
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    STATIC_ROOT=/app/staticfiles \
    PORT=8000
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["/app/docker/entrypoint.sh", "healthcheck"]
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
