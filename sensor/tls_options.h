// The sensor's TLS options (config keys tls_*) as the shared gRPC TLS module takes them.
#pragma once

#include "common/tls/grpc_tls.h"
#include "sensor/config.h"

namespace nodescope::sensor {

inline tls::ClientOptions ClientTlsOptions(const SensorConfig& config) {
  return tls::ClientOptions{.ca = config.tls_ca,
                            .cert = config.tls_cert,
                            .key = config.tls_key,
                            .server_name = config.tls_server_name,
                            .reload_interval = config.tls_reload_interval};
}

}  // namespace nodescope::sensor
