#include "tests/integration/pki.h"

#include <stdexcept>

#include "common/testing/temp_dir.h"
#include "tests/integration/harness.h"

namespace nodescope::test {
namespace {

const char kOpenssl[] = "/usr/bin/openssl";

void Run(const std::vector<std::string>& argv) {
  CommandResult r = RunCommand(argv);
  if (r.exit_code != 0) {
    std::string line;
    for (const auto& a : argv) line += a + " ";
    throw std::runtime_error(line + "exited " + std::to_string(r.exit_code) + ": " + r.err);
  }
}

std::string Hex(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof(buf), "0x%llX", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

TestCa::TestCa(std::string dir, std::string name)
    : dir_(std::move(dir)),
      name_(std::move(name)),
      cert_(dir_ + "/" + name_ + "-ca.crt"),
      key_(dir_ + "/" + name_ + "-ca.key") {
  Run({kOpenssl,
       "req",
       "-x509",
       "-newkey",
       "ec",
       "-pkeyopt",
       "ec_paramgen_curve:prime256v1",
       "-nodes",
       "-keyout",
       key_,
       "-out",
       cert_,
       "-days",
       "1",
       "-subj",
       "/CN=" + name_ + " test CA",
       "-addext",
       "basicConstraints=critical,CA:TRUE",
       "-addext",
       "keyUsage=critical,keyCertSign,cRLSign"});
}

IssuedCert TestCa::Issue(const std::string& stem, const std::string& common_name,
                         const std::vector<std::string>& alt_names, uint64_t serial) {
  IssuedCert issued{dir_ + "/" + stem + ".crt", dir_ + "/" + stem + ".key", serial};
  const std::string csr = dir_ + "/" + stem + ".csr";
  const std::string ext = dir_ + "/" + stem + ".ext";
  std::string san;
  for (const auto& name : alt_names) san += (san.empty() ? "" : ",") + name;
  {
    std::string text =
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth,clientAuth\n";
    if (!san.empty()) text += "subjectAltName=" + san + "\n";
    FILE* f = fopen(ext.c_str(), "w");
    if (f == nullptr) throw std::runtime_error("cannot write " + ext);
    fputs(text.c_str(), f);
    fclose(f);
  }
  Run({kOpenssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", issued.key, "-out", csr, "-subj", "/CN=" + common_name});
  Run({kOpenssl, "x509", "-req", "-in", csr, "-CA", cert_, "-CAkey", key_, "-set_serial",
       Hex(serial), "-days", "1", "-extfile", ext, "-out", issued.cert});
  return issued;
}

uint64_t SerialOf(const std::string& pem_text) {
  if (pem_text.find("-----BEGIN CERTIFICATE-----") == std::string::npos) return 0;
  TempDir dir;
  dir.Write("c.pem", pem_text);
  CommandResult r = RunCommand({kOpenssl, "x509", "-noout", "-serial", "-in", dir.File("c.pem")});
  const std::string marker = "serial=";
  size_t at = r.out.find(marker);
  if (r.exit_code != 0 || at == std::string::npos) return 0;
  return std::stoull(r.out.substr(at + marker.size()), nullptr, 16);
}

uint64_t PresentedSerial(int port, const std::string& ca_file, const std::string& client_cert,
                         const std::string& client_key, std::string* output) {
  std::vector<std::string> argv = {kOpenssl,
                                   "s_client",
                                   "-connect",
                                   "127.0.0.1:" + std::to_string(port),
                                   "-CAfile",
                                   ca_file,
                                   "-verify_return_error",
                                   "-alpn",
                                   "h2",
                                   "-showcerts"};
  if (!client_cert.empty()) argv.insert(argv.end(), {"-cert", client_cert, "-key", client_key});
  CommandResult r = RunCommand(argv, std::chrono::seconds(10));
  if (output != nullptr) *output = r.out + r.err;
  if (r.out.find("Verify return code: 0 (ok)") == std::string::npos) return 0;
  return SerialOf(r.out);
}

}  // namespace nodescope::test
