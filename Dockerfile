# Rehearsal as a container: `docker build -t rehearsal .` then
#   docker run --rm -p 4510:4510 -e REHEARSAL_CONTROL_TOKEN=… rehearsal
# The server listens on 0.0.0.0:4510 inside the container, i.e. beyond loopback: anyone who can
# reach the published port can use the seed's well-known credentials and, with its token, the
# control plane. Publish it on loopback (`-p 127.0.0.1:4510:4510`) unless you mean otherwise.
#
# The entrypoint below is exercised without Docker by cli/tests/container.rs (it reads this
# file); scripts/container.sh also builds and runs the image when a Docker daemon is available.

# ---- build: the toolchain pinned by version (the workspace's rust-version is a minimum)
ARG RUST_VERSION=1.95.0
FROM rust:${RUST_VERSION}-slim-trixie AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p rehearsal-cli --bin rehearsal \
    && install -m 0755 target/release/rehearsal /usr/local/bin/rehearsal

# ---- run: Debian slim (glibc, as built) with bash for the health check; no toolchain
FROM debian:trixie-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin rehearsal
COPY --from=build /usr/local/bin/rehearsal /usr/local/bin/rehearsal
USER 10001:10001
EXPOSE 4510
# Any HTTP answer means the server is up (an unauthenticated REST call answers Twilio's 401);
# bash's /dev/tcp keeps curl out of the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/4510 && printf 'GET /v1/Conversations HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && head -c 8 <&3 | grep -q '^HTTP/1'"]
ENTRYPOINT ["rehearsal"]
CMD ["serve", "--listen", "0.0.0.0:4510"]
