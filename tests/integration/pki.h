// Throwaway certificate authorities for TLS tests, made with the openssl CLI in a test's
// directory: a CA, and server or client certificates it signs (EC P-256, valid one day).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nodescope::test {

struct IssuedCert {
  std::string cert;  // PEM file
  std::string key;   // PEM file (unencrypted PKCS#8)
  uint64_t serial = 0;
};

class TestCa {
 public:
  // Creates <dir>/<name>-ca.crt and its key. Throws std::runtime_error with openssl's output
  // when openssl fails.
  TestCa(std::string dir, std::string name);

  const std::string& cert() const { return cert_; }

  // Issues <dir>/<stem>.crt and <stem>.key for `common_name` with the given subject alternative
  // names ("DNS:localhost", "IP:127.0.0.1"), usable for both serverAuth and clientAuth.
  IssuedCert Issue(const std::string& stem, const std::string& common_name,
                   const std::vector<std::string>& alt_names, uint64_t serial);

 private:
  std::string dir_;
  std::string name_;
  std::string cert_;
  std::string key_;
};

// The serial number of the first certificate in a PEM text, or 0 when there is none.
uint64_t SerialOf(const std::string& pem_text);

// Connects with `openssl s_client` to 127.0.0.1:port, checking the chain against `ca_file`;
// returns the serial number of the certificate the server presented (0 when the handshake
// failed) and in *output what s_client printed.
uint64_t PresentedSerial(int port, const std::string& ca_file, const std::string& client_cert,
                         const std::string& client_key, std::string* output);

}  // namespace nodescope::test
