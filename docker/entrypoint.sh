#!/bin/sh
# One image, several commands:
#   web (default)        apply migrations (unless MIGRATE_AT_START=false), then gunicorn on $PORT
#   worker [ARGS...]     the Celery worker
#   beat [ARGS...]       the Celery scheduler (run exactly one)
#   manage ARGS...       a management command, e.g. `manage scan REGISTRY --wait`
#   createsuperuser ...  `manage createsuperuser`; with --noinput it reads DJANGO_SUPERUSER_USERNAME,
#                        DJANGO_SUPERUSER_PASSWORD and DJANGO_SUPERUSER_EMAIL
#   healthcheck          what the image's HEALTHCHECK runs
# Any variable NAME may instead be given as NAME_FILE, the path of a file
# holding its value (Docker and Kubernetes secrets).
set -eu

for name in $(env | sed -n 's/^\([A-Z][A-Z0-9_]*\)_FILE=.*/\1/p'); do
    eval "path=\${${name}_FILE}"
    eval "set_already=\${${name}:+yes}"  # an empty NAME (a blank line of .env) does not count
    if [ "${set_already:-}" = yes ]; then
        echo "entrypoint: both $name and ${name}_FILE are set; set one" >&2
        exit 1
    fi
    if [ ! -r "$path" ]; then
        echo "entrypoint: ${name}_FILE names $path, which cannot be read" >&2
        exit 1
    fi
    value=$(cat "$path")
    export "$name=$value"
done

# JSON logs: no text banners or progress lines on stdout either.
quiet=""
verbosity=1
if [ "${LOG_FORMAT:-text}" = json ]; then
    quiet="--quiet"
    verbosity=0
fi

command=${1:-web}
[ $# -gt 0 ] && shift

case "$command" in
    web)
        if [ "${MIGRATE_AT_START:-true}" = true ]; then
            python manage.py migrate --noinput -v "$verbosity"
        fi
        exec gunicorn config.wsgi:application --config docker/gunicorn.conf.py "$@"
        ;;
    worker)
        exec celery -A config $quiet worker --loglevel "${LOG_LEVEL:-INFO}" \
            --concurrency "${WORKER_CONCURRENCY:-4}" "$@"
        ;;
    beat)
        # The schedule's state is only "when did each entry last run": /tmp is enough.
        exec celery -A config $quiet beat --loglevel "${LOG_LEVEL:-INFO}" --schedule /tmp/celerybeat-schedule "$@"
        ;;
    manage)
        exec python manage.py "$@"
        ;;
    createsuperuser)
        exec python manage.py createsuperuser "$@"
        ;;
    healthcheck)
        exec python docker/healthcheck.py
        ;;
    *)
        exec "$command" "$@"
        ;;
esac
