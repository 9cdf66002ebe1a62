#include "tests/integration/nginx.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace nodescope::test {
namespace {

using namespace std::chrono_literals;

// Tab-separated: nginx's default log escaping turns a tab inside a value into "\x09", so the
// separator never occurs in a field. $request goes last as the only field with spaces.
constexpr char kLogFormat[] =
    "$remote_addr\\t$remote_port\\t$server_addr\\t$server_port\\t$connection\\t"
    "$connection_requests\\t$status\\t$bytes_sent\\t$body_bytes_sent\\t$request_length\\t"
    "$request_time\\t$msec\\t$pid\\t$request";
constexpr size_t kLogFields = 14;

bool IsIpv6(const std::string& addr) { return addr.find(':') != std::string::npos; }

std::string HostPort(const std::string& addr, int port) {
  return (IsIpv6(addr) ? "[" + addr + "]" : addr) + ":" + std::to_string(port);
}

std::string Config(const NginxOptions& o, const std::string& prefix) {
  std::ostringstream c;
  // Workers run as root: the prefix lives in a 0700 test directory that `nobody` cannot read.
  c << "user root;\n"
    << "worker_processes " << o.worker_processes << ";\n"
    << "daemon off;\nmaster_process on;\n"
    << "pid " << prefix << "/nginx.pid;\n"
    << "lock_file " << prefix << "/nginx.lock;\n"
    << "error_log " << prefix << "/error.log info;\n"
    << "events { worker_connections 4096; }\n"
    << "http {\n"
    << "  log_format ns_test escape=default \"" << kLogFormat << "\";\n"
    << "  access_log " << prefix << "/access.log ns_test;\n";
  for (const char* t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"})
    c << "  " << t << "_temp_path " << prefix << "/tmp/" << t << ";\n";
  c << "  default_type application/octet-stream;\n"
    << "  types { text/plain txt; }\n"
    << "  sendfile " << (o.sendfile ? "on" : "off") << ";\n"
    << "  keepalive_timeout " << o.keepalive_timeout_s << ";\n"
    << "  keepalive_requests " << o.keepalive_requests << ";\n"
    << "  server {\n";
  for (const auto& addr : o.listen) {
    c << "    listen " << HostPort(addr, o.port) << (o.tls ? " ssl" : "") << ";\n";
  }
  if (o.tls) {
    c << "    ssl_certificate " << prefix << "/cert.pem;\n"
      << "    ssl_certificate_key " << prefix << "/key.pem;\n";
  }
  c << "    root " << prefix << "/html;\n";
  if (o.gzip) c << "    gzip on;\n    gzip_types text/plain;\n    gzip_min_length 1;\n";
  for (const auto& [path, upstream] : o.proxies) {
    c << "    location " << path << " { proxy_pass " << upstream << "; proxy_http_version 1.1; }\n";
  }
  for (const auto& [path, code] : o.returns) {
    c << "    location = " << path << " { return " << code
      << (code == 301 || code == 302 ? " /" : "") << "; }\n";
  }
  c << "  }\n}\n";
  return c.str();
}

Status WriteFileOfSize(const std::string& path, uint64_t size) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::ofstream out(path, std::ios::binary);
  // A 251-byte cycle (prime) so a shifted or repeated block would show in a content check.
  std::string block(1 << 16, '\0');
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>('0' + (i % 251) % 75);
  uint64_t left = size;
  uint64_t offset = 0;
  while (left > 0 && out) {
    const size_t start = offset % 251;
    const size_t n = std::min<uint64_t>(left, block.size() - 251);
    out.write(block.data() + start, static_cast<std::streamsize>(n));
    left -= n;
    offset += n;
  }
  out.close();
  if (!out) return Status::Error("cannot write " + path);
  return Status::Ok();
}

std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = ReadFile(entry.path().string() + "/stat");
    size_t close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream rest(stat.substr(close_paren + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(std::atoi(name.c_str()));
  }
  return out;
}

// The whole field as one number: "12x4" is an error, not 12.
template <typename T>
bool Number(const std::string& field, T* out) {
  const char* end = field.data() + field.size();
  auto [ptr, ec] = std::from_chars(field.data(), end, *out);
  return ec == std::errc() && ptr == end && !field.empty();
}

}  // namespace

std::optional<AccessLogEntry> ParseAccessLogLine(const std::string& line) {
  std::vector<std::string> f;
  std::istringstream in(line);
  for (std::string field; std::getline(in, field, '\t');) f.push_back(field);
  if (f.size() != kLogFields) return std::nullopt;
  AccessLogEntry e;
  e.remote_addr = f[0];
  e.server_addr = f[2];
  e.request = f[13];
  const bool ok = Number(f[1], &e.remote_port) && Number(f[3], &e.server_port) &&
                  Number(f[4], &e.connection) && Number(f[5], &e.connection_requests) &&
                  Number(f[6], &e.status) && Number(f[7], &e.bytes_sent) &&
                  Number(f[8], &e.body_bytes_sent) && Number(f[9], &e.request_length) &&
                  Number(f[10], &e.request_time_s) && Number(f[11], &e.msec) &&
                  Number(f[12], &e.pid);
  if (!ok) return std::nullopt;
  return e;
}

Result<std::unique_ptr<Nginx>> Nginx::Start(NginxOptions options) {
  const std::string binary = Which("nginx");
  if (binary.empty()) return Status::Error("nginx not installed (scripts/install-deps.sh)");
  if (options.listen.empty()) return Status::Error("nginx: no listen address");
  if (options.port == 0) options.port = FreePort();
  std::unique_ptr<Nginx> n(new Nginx());
  n->options_ = options;
  n->dir_ = std::make_unique<TempDir>();
  const std::string prefix = n->dir_->path();
  std::error_code ec;
  std::filesystem::create_directories(prefix + "/tmp", ec);
  std::filesystem::create_directories(prefix + "/html", ec);
  for (const auto& [path, size] : options.files) {
    if (Status s = WriteFileOfSize(n->FilePath(path), size); !s.ok()) return s;
  }
  if (options.tls) {
    if (Status s =
            Run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                 "/CN=localhost", "-keyout", prefix + "/key.pem", "-out", prefix + "/cert.pem"});
        !s.ok()) {
      return Status::Error("nginx: self-signed certificate: " + s.message());
    }
  }
  n->dir_->Write("nginx.conf", Config(options, prefix));
  const Netns* ns = options.ns;
  std::unique_ptr<Netns> root = Netns::Root();
  if (ns == nullptr) ns = root.get();
  n->process_ = std::make_unique<Subprocess>(
      // SIGTERM is nginx's fast shutdown: the master takes its workers down with it.
      ns->Exec(DieWithParent({binary, "-p", prefix + "/", "-c", prefix + "/nginx.conf"}, "TERM")),
      n->dir_->File("stdout.log"));
  const bool up = WaitFor(
      [&] {
        if (!n->process_->Running()) return true;
        for (const auto& addr : options.listen)
          if (!CanConnect(options.ns, addr, options.port)) return false;
        return true;
      },
      10s);
  if (!up || !n->process_->Running()) {
    return Status::Error("nginx did not start listening on port " + std::to_string(options.port) +
                         ": " + n->process_->Log() + n->ErrorLog());
  }
  return n;
}

Nginx::~Nginx() {
  if (!process_) return;
  const std::vector<pid_t> workers = worker_pids();
  // SIGTERM is nginx's fast shutdown: the master stops its workers and removes its pid file.
  if (process_->Stop(SIGTERM, 5s) < 0) process_->Stop(SIGKILL, 5s);
  for (pid_t w : workers) {
    // A worker outlives a master killed with SIGKILL; the name check guards against the pid
    // having been recycled since the list was taken.
    std::string stat = ReadFile("/proc/" + std::to_string(w) + "/stat");
    if (stat.find("(nginx)") != std::string::npos) kill(w, SIGKILL);
  }
  process_.reset();
}

std::string Nginx::Url(const std::string& path, const std::string& addr) const {
  return (options_.tls ? "https://" : "http://") +
         HostPort(addr.empty() ? options_.listen.front() : addr, options_.port) + path;
}

std::vector<pid_t> Nginx::worker_pids() const { return ChildrenOf(process_->pid()); }

std::string Nginx::FilePath(const std::string& url_path) const {
  return dir_->path() + "/html" + url_path;
}

std::vector<AccessLogEntry> Nginx::AccessLog() const {
  std::vector<AccessLogEntry> out;
  for (const std::string& line : CompleteLines(dir_->File("access.log"))) {
    if (auto e = ParseAccessLogLine(line)) out.push_back(*e);
  }
  return out;
}

std::vector<AccessLogEntry> Nginx::WaitForAccessLog(size_t n,
                                                    std::chrono::milliseconds timeout) const {
  std::vector<AccessLogEntry> entries;
  WaitFor(
      [&] {
        entries = AccessLog();
        return entries.size() >= n;
      },
      timeout);
  return entries;
}

std::string Nginx::ErrorLog() const { return ReadFile(dir_->File("error.log")); }

Result<CurlResult> Curl(const Netns* ns, const std::string& url,
                        const std::vector<std::string>& extra, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {"curl",
                                   "-sS",
                                   "-o",
                                   "/dev/null",
                                   "-w",
                                   "%{http_code} %{size_download} %{size_header} %{size_request} "
                                   "%{local_ip} %{local_port} %{num_connects}"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  std::unique_ptr<Netns> root = Netns::Root();
  CommandResult r = RunCommand((ns ? ns : root.get())->Exec(argv), timeout);
  if (r.exit_code != 0) {
    return Status::Error("curl " + url + ": exit " + std::to_string(r.exit_code) + ": " + r.err);
  }
  CurlResult c;
  std::istringstream in(r.out);
  if (!(in >> c.http_code >> c.size_download >> c.size_header >> c.size_request >> c.local_ip >>
        c.local_port >> c.num_connects)) {
    return Status::Error("curl " + url + ": unexpected -w output: " + r.out);
  }
  c.stderr_text = r.err;
  return c;
}

bool CanConnect(const Netns* ns, const std::string& addr, int port) {
  bool ok = false;
  auto attempt = [&] {
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (IsIpv6(addr)) {
      auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
      a6->sin6_family = AF_INET6;
      a6->sin6_port = htons(port);
      if (inet_pton(AF_INET6, addr.c_str(), &a6->sin6_addr) != 1) return;
      len = sizeof(*a6);
    } else {
      auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
      a4->sin_family = AF_INET;
      a4->sin_port = htons(port);
      if (inet_pton(AF_INET, addr.c_str(), &a4->sin_addr) != 1) return;
      len = sizeof(*a4);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    ok = connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
    close(fd);
  };
  if (ns == nullptr || ns->is_root()) {
    attempt();
    return ok;
  }
  return ns->RunIn(attempt).ok() && ok;
}

}  // namespace nodescope::test
