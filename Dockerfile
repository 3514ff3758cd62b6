# feedback-proxy: multi-stage build, non-root runtime, config baked in, everything overridable
# by FEEDBACK_PROXY_* environment variables (see config/feedback-proxy.toml).

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN pip install --no-compile . \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && rm -rf /opt/venv/lib/python3.11/site-packages/pip /opt/venv/lib/python3.11/site-packages/setuptools

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/feedback-proxy --create-home feedback-proxy
COPY --from=build /opt/venv /opt/venv
COPY config/feedback-proxy.toml /etc/feedback-proxy/feedback-proxy.toml
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FEEDBACK_PROXY_CONFIG=/etc/feedback-proxy/feedback-proxy.toml \
    FEEDBACK_PROXY_REDIS__DATA_DIR=/var/lib/feedback-proxy/data \
    FEEDBACK_PROXY_LOG__FORMAT=json
USER feedback-proxy
WORKDIR /var/lib/feedback-proxy
VOLUME ["/var/lib/feedback-proxy"]
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FEEDBACK_PROXY_PROXY__PORT', '8080'), timeout=2)"]
ENTRYPOINT ["feedback-proxy"]
CMD ["serve"]
