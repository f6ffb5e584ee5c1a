# One image for every Python service: app, workers, beat, Flower, migrations.
# The base is overridable (air-gapped builds use a stand-in, see docker/offline/).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
# The code in /srv is importable before Celery loads the app: `--pool custom` imports
# CELERY_CUSTOM_WORKER_POOL first, from the `celery` script in /opt/venv/bin (F24).
ENV PYTHONPATH=/srv

RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Bytecode compiled at build time (pip's default): with PYTHONDONTWRITEBYTECODE and a
# read-only root, every process (each healthcheck run too) would otherwise compile
# Celery, kombu and the app from source at start (issue 15).
RUN pip install --require-hashes -r /tmp/requirements.txt && rm /tmp/requirements.txt

# Non-root user with a fixed uid, owning the only writable paths (volumes).
RUN groupadd --system --gid 10001 celeryref \
 && useradd --system --uid 10001 --gid celeryref --home-dir /home/celeryref --create-home celeryref \
 && mkdir -p /var/lib/celeryref/reports /var/lib/celeryref/images \
 && chown -R celeryref:celeryref /var/lib/celeryref

WORKDIR /srv
COPY celeryref ./celeryref
# Benchmark and fault-drill tasks: imported only where EXTRA_TASK_PACKAGES names
# them (the bench and fault-suite overrides); production workers never register them.
COPY bench ./bench
COPY devtools ./devtools
RUN python -m compileall -q -j 0 celeryref bench devtools
USER celeryref

# Each compose service sets its own `command:` (exec form: the process gets SIGTERM).
CMD ["python", "-m", "celeryref.client", "demo"]
