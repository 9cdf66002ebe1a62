# nodescope-sensor: build with the scripts CI runs (.ci/run -> scripts/test.sh), run on
# bookworm-slim with only the runtime libraries. Runs as root: it loads eBPF programs (the chart
# adds the capabilities). Build from the repository root:
#   docker build -f docker/sensor.Dockerfile -t nodescope/sensor:0.1.0 .
FROM debian:bookworm AS build
WORKDIR /src
# The dependency layer depends only on this script, so source edits do not reinstall packages.
COPY scripts/install-deps.sh scripts/
RUN ./scripts/install-deps.sh
COPY . .
# Own build directory: a host build/ in the context would carry another machine's CMake cache.
RUN NODESCOPE_BUILD_DIR=/src/build-image ./scripts/build.sh --target nodescope-sensor

FROM debian:bookworm-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
COPY --from=build /src/build-image/bin/nodescope-sensor /usr/local/bin/nodescope-sensor
ENTRYPOINT ["/usr/local/bin/nodescope-sensor"]
