# The herald binary in an image, for docker-compose.yml and Kubernetes. Two stages: a Rust
# build with librdkafka's build dependencies, then a slim runtime with OpenSSL, CA certificates
# and curl (the healthchecks call /readyz).
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p herald && cp target/release/herald /usr/local/bin/herald

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/herald /usr/local/bin/herald
USER 65532:65532
ENTRYPOINT ["herald"]
