# Correspondance: one image for the API and the worker (docker-compose.yml picks the command).

# The web app's npm packages (Leaflet), installed from the lockfile.
FROM node:20-slim AS web
WORKDIR /web
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# A fixed uid, so the named volume's files keep one owner across image rebuilds.
RUN useradd --create-home --uid 10001 --user-group correspondance

# Packages first (with the exact pins of the lock file), data later: editing a city's data
# does not reinstall the dependencies.
COPY pyproject.toml requirements.lock README.md ./
COPY correspondance ./correspondance
COPY feeds ./feeds
COPY routing ./routing
COPY realtime ./realtime
COPY crowdsource ./crowdsource
COPY api ./api
RUN pip install -c requirements.lock . && rm -rf build ./*.egg-info

COPY data ./data
COPY frontend ./frontend
COPY --from=web /web/node_modules ./frontend/node_modules

# /app/var holds the city build cache; docker-compose mounts a named volume there, which
# Docker seeds with this directory's owner, so the non-root user can write to it.
RUN mkdir -p /app/var/cache && chown -R correspondance:correspondance /app/var

# The code is imported from /app (not the copy in site-packages) so paths derived from the
# package location (data, frontend) point at /app; the settings are also set explicitly.
ENV PYTHONPATH=/app \
    CORRESPONDANCE_DATA_DIR=/app/data \
    CORRESPONDANCE_CACHE_DIR=/app/var/cache \
    CORRESPONDANCE_FRONTEND_DIR=/app/frontend \
    NUMBA_CACHE_DIR=/app/var/numba

USER correspondance
EXPOSE 8000
CMD ["correspondance", "serve", "--host", "0.0.0.0", "--port", "8000"]
