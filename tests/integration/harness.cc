#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace nodescope::test {

std::string BinDir() {
  if (const char* dir = std::getenv("NODESCOPE_BIN_DIR")) return dir;
  return NODESCOPE_TEST_BIN_DIR;
}

namespace {

pid_t Spawn(const std::vector<std::string>& argv, int out_fd, int err_fd,
            const std::map<std::string, std::string>& env) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // The child dies with the test process, so nothing outlives a crashed or killed test (a
    // ctest timeout, ^C on a bench).
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, STDIN_FILENO);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

Subprocess::Subprocess(std::vector<std::string> argv, std::string log_path,
                       std::map<std::string, std::string> env)
    : log_path_(std::move(log_path)) {
  int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + log_path_);
  pid_ = Spawn(argv, fd, fd, env);
  close(fd);
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && status_ < 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
}

bool Subprocess::Running() {
  if (status_ >= 0) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    return false;
  }
  return true;
}

int Subprocess::Wait(std::chrono::milliseconds timeout) {
  WaitFor([this] { return !Running(); }, timeout);
  return status_ >= 0 ? ExitCode(status_) : -1;
}

int Subprocess::Stop(int sig, std::chrono::milliseconds timeout) {
  if (Running()) kill(pid_, sig);
  return Wait(timeout);
}

std::string Subprocess::Log() const { return ReadFile(log_path_); }

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  TempDir dir;
  int out = open(dir.File("out").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  int err = open(dir.File("err").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  pid_t pid = Spawn(argv, out, err, {});
  close(out);
  close(err);
  CommandResult result;
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      result.err = "timed out after " + std::to_string(timeout.count()) + " ms\n";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  result.exit_code = ExitCode(status);
  result.out = ReadFile(dir.File("out"));
  result.err += ReadFile(dir.File("err"));
  return result;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    throw std::runtime_error("bind for a free port failed");
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string HttpGet(int port, const std::string& path, int* status) {
  return HttpGet("127.0.0.1", port, path, status);
}

std::string HttpGet(const std::string& ipv4, int port, const std::string& path, int* status) {
  if (status) *status = 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  inet_pton(AF_INET, ipv4.c_str(), &addr.sin_addr);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return "";
  }
  std::string resp;
  char buf[65536];
  pollfd pfd{fd, POLLIN, 0};
  while (poll(&pfd, 1, 5000) > 0) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    resp.append(buf, n);
  }
  close(fd);
  size_t sp = resp.find(' ');
  if (status && sp != std::string::npos) *status = std::atoi(resp.c_str() + sp + 1);
  size_t body = resp.find("\r\n\r\n");
  if (body == std::string::npos) return "";
  std::string out = resp.substr(body + 4);
  // Chunked bodies: join the chunks so callers see the plain text.
  if (resp.substr(0, body).find("chunked") != std::string::npos) {
    std::string joined;
    size_t pos = 0;
    while (pos < out.size()) {
      size_t eol = out.find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t n = std::stoul(out.substr(pos, eol - pos), nullptr, 16);
      if (n == 0) break;
      joined += out.substr(eol + 2, n);
      pos = eol + 2 + n + 2;
    }
    out = joined;
  }
  return out;
}

double MetricValue(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

double MetricSum(const std::string& exposition, const std::string& family) {
  double total = 0;
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() <= family.size() || line.compare(0, family.size(), family) != 0) continue;
    if (line[family.size()] != '{' && line[family.size()] != ' ') continue;
    total += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return total;
}

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

std::vector<std::string> CompleteLines(const std::string& path) {
  std::string text = ReadFile(path);
  text.erase(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

pid_t RunExecutable(const std::string& path) {
  pid_t pid = fork();
  if (pid == 0) {
    execl(path.c_str(), path.c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

std::map<std::string, int> ExecCounts(const std::string& jsonl_path, const std::string& filename) {
  std::map<std::string, int> seen;
  for (const std::string& line : CompleteLines(jsonl_path)) {
    auto r = nlohmann::json::parse(line);
    if (r["fields"].value("event", "") == "exec" && r["fields"].value("filename", "") == filename)
      ++seen[r["tags"]["pid"].get<std::string>()];
  }
  return seen;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::unique_ptr<Subprocess> StartAggregator(const std::string& config, const std::string& log,
                                            int http_port, bool* ready) {
  auto aggregator = std::make_unique<Subprocess>(
      std::vector<std::string>{BinDir() + "/nodescope-aggregator", "--config", config}, log);
  *ready = WaitFor(
      [&] {
        int status = 0;
        HttpGet(http_port, "/readyz", &status);
        return status == 200;
      },
      std::chrono::seconds(30));
  return aggregator;
}

}  // namespace nodescope::test
