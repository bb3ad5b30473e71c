FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY pv_platform ./pv_platform
COPY integrations ./integrations
COPY dashboards ./dashboards
COPY workspace.yaml dagster.yaml ./
COPY deploy ./deploy
RUN pip install --no-cache-dir uv && uv pip install --system --no-cache -c requirements.lock -e .
ENV DAGSTER_HOME=/app/dagster_home
RUN mkdir -p $DAGSTER_HOME && cp dagster.yaml $DAGSTER_HOME/
