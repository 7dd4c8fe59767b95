# syntax=docker/dockerfile:1
# TaskTrackerPro: one image for the API (default command), the Celery worker and beat.
#   docker build -t tasktracker .
#   docker run -e DATABASE_URL=... -e REDIS_URL=... -e JWT_SECRET_KEY=... -p 8000:8000 tasktracker

# -- build: install the package and its pinned dependencies into a virtualenv ------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies first, so a code change does not reinstall them (psycopg and argon2 ship wheels:
# no compiler needed).
COPY pyproject.toml constraints.txt README.md ./
COPY tasktracker ./tasktracker
RUN /opt/venv/bin/pip install -c constraints.txt .

# -- runtime: the virtualenv, the gunicorn config, an unprivileged user ------------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TASKTRACKER_ENV=production \
    TASKTRACKER_DATA_DIR=/var/lib/tasktracker \
    HOST=0.0.0.0 \
    PORT=8000
RUN groupadd --system --gid 10001 tasktracker \
    && useradd --system --uid 10001 --gid tasktracker --home-dir /app --shell /usr/sbin/nologin tasktracker \
    && mkdir -p /app /var/lib/tasktracker \
    && chown tasktracker:tasktracker /var/lib/tasktracker
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY gunicorn.conf.py ./
USER tasktracker
EXPOSE 8000
# Liveness only: /readyz would mark the container unhealthy while Redis is down, although the
# API still answers (uncached). Load balancers should use /readyz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=4)"]
# Migrate, then serve. With several API replicas, run the migration once instead (as
# docker-compose.yml does with its "migrate" service) and start them with just gunicorn.
CMD ["sh", "-c", "flask --app tasktracker.wsgi db upgrade && exec gunicorn -c gunicorn.conf.py tasktracker.wsgi:app"]
