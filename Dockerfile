# syntax=docker/dockerfile:1
# Keyward in a container (docs/operations.md, "Container image").
#
# Multi-stage: the build stage compiles the release binary (the built-in
# plugins too: rust-toolchain.toml brings the wasm32-wasip2 target); the
# final image is distroless — glibc, CA certificates, no shell, no package
# manager — plus that one binary, run as a non-root user.
#
#   docker build --build-arg KEYWARD_GIT_COMMIT=$(git rev-parse HEAD) -t keyward .
#   docker run -d --name keyward -p 127.0.0.1:8080:8080 \
#       --env-file /etc/keyward/keyward.env -v keyward-data:/var/lib/keyward keyward
#
# The master key comes from the environment (an env file or the
# orchestrator's secret store), never from the image.

FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Installs the toolchain and targets rust-toolchain.toml pins.
RUN rustup toolchain install
# `keyward version` names it (.git is not in the build context).
ARG KEYWARD_GIT_COMMIT=unknown
RUN KEYWARD_GIT_COMMIT="$KEYWARD_GIT_COMMIT" cargo build --release --locked -p keyward \
    && mkdir -p /out/data \
    && strip --strip-debug -o /out/keyward target/release/keyward

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/keyward /usr/bin/keyward
# The store's folder, owned by the image's non-root user (65532), mode 0700.
COPY --from=build --chown=65532:65532 --chmod=0700 /out/data /var/lib/keyward
USER 65532:65532
ENV KEYWARD_DATA_DIR=/var/lib/keyward \
    KEYWARD_LISTEN=0.0.0.0:8080 \
    KEYWARD_LOG_FORMAT=json
VOLUME ["/var/lib/keyward"]
EXPOSE 8080
ENTRYPOINT ["/usr/bin/keyward"]
CMD ["serve"]
