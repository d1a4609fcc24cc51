# PostgreSQL 18 with Strata preinstalled.
#   docker build -t strata .   &&   docker/smoke.sh
FROM postgres:18 AS builder
ARG RUST_VERSION=1.95.0
ARG PGRX_VERSION=0.18.1
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential ca-certificates curl pkg-config libclang-dev clang \
        postgresql-server-dev-18 \
 && rm -rf /var/lib/apt/lists/*
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain "${RUST_VERSION}"
ENV PATH=/root/.cargo/bin:$PATH
RUN cargo install cargo-pgrx --version "${PGRX_VERSION}" --locked \
 && cargo pgrx init --pg18 /usr/lib/postgresql/18/bin/pg_config
WORKDIR /src
COPY Cargo.toml Cargo.lock strata.control ./
COPY .cargo .cargo
COPY src src
COPY crates crates
RUN cargo pgrx package --pg-config /usr/lib/postgresql/18/bin/pg_config \
 && mkdir /out \
 && cp -a target/release/strata-pg18/. /out/

FROM postgres:18
COPY --from=builder /out/ /
COPY docker/initdb-strata.sql /docker-entrypoint-initdb.d/10-strata.sql
# lsm row changes are logged as records of Strata's WAL resource manager
CMD ["postgres", "-c", "shared_preload_libraries=strata"]
