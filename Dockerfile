# Builds the `ensemble` binary and ships it in a small Debian image.
# Untested on the machine it was written on (no Docker there); see docs/nats.md.

FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin ensemble

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ensemble /usr/local/bin/ensemble
COPY configs /configs
VOLUME ["/data"]
ENTRYPOINT ["ensemble"]
CMD ["--help"]
