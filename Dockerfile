# The service image: a release build on Debian, run as an unprivileged user.
FROM rust:1-bookworm AS build
# build.rs bundles the GraphiQL page and the dashboard from npm (web/*/package-lock.json).
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY web/graphiql/package.json web/graphiql/package-lock.json web/graphiql/build.mjs ./web/graphiql/
COPY web/graphiql/src ./web/graphiql/src
COPY web/dashboard/package.json web/dashboard/package-lock.json web/dashboard/build.mjs ./web/dashboard/
COPY web/dashboard/src ./web/dashboard/src
COPY schema.graphql ./
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/inventory inventory && mkdir -p /var/lib/inventory && chown inventory /var/lib/inventory
COPY --from=build /src/target/release/inventory-service /usr/local/bin/inventory-service
USER inventory
ENV INVENTORY_LISTEN=0.0.0.0:8080 INVENTORY_DATA_DIR=/var/lib/inventory
EXPOSE 8080
ENTRYPOINT ["inventory-service"]
