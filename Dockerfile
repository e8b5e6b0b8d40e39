# aup-milter: the gateway in a container. SMTP on 10025, console and /metrics on 8025.
# The image installs the wheel (the same one `make test-wheel` checks), not the source tree.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY milter ./milter
COPY policies ./policies
COPY quarantine ./quarantine
COPY archive ./archive
COPY console ./console
COPY config ./config
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmagic1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/aup-milter --create-home --shell /usr/sbin/nologin aup
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

# Data (database, blobs, outbox) lives in the volume. The shipped container.toml
# listens on every interface but trusts only loopback: mount your own file and
# set AUP_MILTER_CONFIG to it to trust the agency mail server.
USER aup
WORKDIR /var/lib/aup-milter
VOLUME ["/var/lib/aup-milter"]
ENV AUP_MILTER_CONFIG=/usr/local/lib/python3.11/site-packages/config/container.toml
EXPOSE 10025 8025
CMD ["aup-milter", "serve"]
