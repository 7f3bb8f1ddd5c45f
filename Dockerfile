# The catalog binary and its load tool in a small image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p catalog -p bench

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/catalog /usr/local/bin/catalog
COPY --from=build /src/target/release/catalog-bench /usr/local/bin/catalog-bench
RUN useradd --system --create-home catalog && mkdir /data && chown catalog /data
USER catalog
ENV CATALOG_DATA_DIR=/data
ENTRYPOINT ["catalog"]
