# aup-milter: the gateway in a container. SMTP on 10025, console and /metrics on 8025.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends libmagic1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/aup-milter --create-home --shell /usr/sbin/nologin aup

WORKDIR /opt/aup-milter
COPY pyproject.toml README.md ./
COPY milter ./milter
COPY policies ./policies
COPY quarantine ./quarantine
COPY archive ./archive
COPY console ./console
COPY config ./config
RUN pip install --no-cache-dir .

# Data (database, blobs, outbox) lives in the volume; the config listens on all interfaces.
USER aup
WORKDIR /var/lib/aup-milter
VOLUME ["/var/lib/aup-milter"]
ENV AUP_MILTER_CONFIG=/opt/aup-milter/config/container.toml
EXPOSE 10025 8025
CMD ["aup-milter", "serve"]
