# nodescope-aggregator (and the nodescope CLI, for `kubectl exec ... nodescope observe`): build
# with the scripts CI runs, run on bookworm-slim as uid 65532 with only the runtime libraries.
# Build from the repository root:
#   docker build -f docker/aggregator.Dockerfile -t nodescope/aggregator:0.1.0 .
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN ./scripts/install-deps.sh
COPY . .
RUN NODESCOPE_BUILD_DIR=/src/build-image ./scripts/build.sh --target nodescope-aggregator nodescope

FROM debian:bookworm-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
COPY --from=build /src/build-image/bin/nodescope-aggregator /usr/local/bin/nodescope-aggregator
COPY --from=build /src/build-image/bin/nodescope /usr/local/bin/nodescope
# state_dir and file sinks go here (the chart mounts an emptyDir over it).
RUN mkdir -p /var/lib/nodescope && chown 65532:65532 /var/lib/nodescope
USER 65532:65532
EXPOSE 9970 9971
ENTRYPOINT ["/usr/local/bin/nodescope-aggregator"]
