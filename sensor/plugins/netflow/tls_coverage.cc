#include "sensor/plugins/netflow/tls_coverage.h"

#include <elf.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nodescope::sensor::netflow {
namespace {

std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// A symbol table larger than this is not read (a Go binary is told by its section first).
constexpr uint64_t kMaxTable = 64 << 20;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

bool ReadAt(int fd, void* buf, size_t size, uint64_t offset) {
  auto* out = static_cast<char*>(buf);
  while (size > 0) {
    ssize_t n = pread(fd, out, size, static_cast<off_t>(offset));
    if (n <= 0) return false;
    out += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

std::string Plural(uint64_t n, const char* one) {
  return std::to_string(n) + " " + one + (n == 1 ? "" : "es");
}

}  // namespace

std::optional<std::string> ClassifyTlsLibrary(std::string_view path) {
  std::string_view base = BaseName(path);
  auto lib = [&](std::string_view name) {
    return base.starts_with(name) && base.size() > name.size() &&
           (base[name.size()] == '.' || base[name.size()] == '-');
  };
  if (base.starts_with("libssl.so.")) {
    std::string_view version = base.substr(10);
    if (version == "3" || version.starts_with("3.")) return std::string();
    return "OpenSSL libssl.so." + std::string(version) + ": not OpenSSL 3";
  }
  if (lib("libgnutls")) return std::string("GnuTLS: not OpenSSL 3");
  if (lib("libnss3")) return std::string("NSS: not OpenSSL 3");
  if (lib("libwolfssl")) return std::string("wolfSSL: not OpenSSL 3");
  if (lib("libmbedtls")) return std::string("mbed TLS: not OpenSSL 3");
  return std::nullopt;
}

Result<ElfTls> InspectElf(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::Error("open " + path + ": " + std::strerror(errno));
  Elf64_Ehdr eh{};
  if (!ReadAt(fd.get(), &eh, sizeof(eh), 0) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr) ||
      eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum) {
    return Status::Error(path + ": not a 64-bit ELF file with sections");
  }
  std::vector<Elf64_Shdr> sections(eh.e_shnum);
  if (!ReadAt(fd.get(), sections.data(), sections.size() * sizeof(Elf64_Shdr), eh.e_shoff)) {
    return Status::Error(path + ": cannot read the section headers");
  }
  auto read_section = [&](const Elf64_Shdr& s, std::string& out) {
    if (s.sh_type == SHT_NOBITS || s.sh_size > kMaxTable) return false;
    out.resize(s.sh_size);
    return ReadAt(fd.get(), out.data(), out.size(), s.sh_offset);
  };
  std::string names;
  if (!read_section(sections[eh.e_shstrndx], names)) {
    return Status::Error(path + ": cannot read the section names");
  }
  ElfTls tls;
  for (const Elf64_Shdr& s : sections) {
    if (s.sh_name < names.size() && std::strcmp(names.c_str() + s.sh_name, ".go.buildinfo") == 0) {
      tls.go = true;
    }
  }
  for (const Elf64_Shdr& s : sections) {
    if ((s.sh_type != SHT_SYMTAB && s.sh_type != SHT_DYNSYM) || s.sh_link >= sections.size() ||
        s.sh_entsize != sizeof(Elf64_Sym)) {
      continue;
    }
    std::string symbols, strings;
    if (!read_section(s, symbols) || !read_section(sections[s.sh_link], strings)) continue;
    bool read = false, write = false;
    for (size_t i = 0; i + sizeof(Elf64_Sym) <= symbols.size(); i += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      std::memcpy(&sym, symbols.data() + i, sizeof(sym));
      if (sym.st_name >= strings.size()) continue;
      const char* name = strings.c_str() + sym.st_name;
      if (std::strcmp(name, "runtime.main") == 0) tls.go = true;
      // Defined functions only: a program linked against libssl imports them (undefined).
      if (sym.st_shndx == SHN_UNDEF || ELF64_ST_TYPE(sym.st_info) != STT_FUNC) continue;
      if (std::strcmp(name, "SSL_read") == 0) read = true;
      if (std::strcmp(name, "SSL_write") == 0) write = true;
    }
    if (read && write) tls.ssl_functions = true;
  }
  return tls;
}

std::optional<std::vector<proc::FoundFile>> FindTlsFiles(const std::string& proc_root,
                                                         uint32_t pid) {
  const std::string dir = proc_root + "/" + std::to_string(pid);
  std::ifstream in(dir + "/maps");
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  std::vector<proc::FoundFile> found;
  for (const proc::MappedFile& mapped : proc::ParseMaps(text.str())) {
    std::optional<std::string> tls = ClassifyTlsLibrary(mapped.path);
    if (!tls) continue;
    // map_files reaches the mapped file itself, deleted or in another mount namespace; it
    // needs CAP_SYS_ADMIN, else the path under the process's root.
    std::string target = dir + "/map_files/" + mapped.range;
    struct stat st {};
    if (stat(target.c_str(), &st) != 0) target = dir + "/root" + mapped.path;
    found.push_back({target, mapped.path, tls->empty() ? kTlsLibssl3 : kTlsOtherLib});
  }
  char exe[4096];
  ssize_t n = readlink((dir + "/exe").c_str(), exe, sizeof(exe) - 1);
  if (n > 0) {
    std::string_view path(exe, static_cast<size_t>(n));
    constexpr std::string_view kDeleted = " (deleted)";
    if (path.ends_with(kDeleted)) path.remove_suffix(kDeleted.size());
    found.push_back({dir + "/exe", std::string(path), kTlsExecutable});
  }
  return found;
}

TlsCoverage::TlsCoverage(Options options, AttachFn attach)
    : options_(std::move(options)),
      attach_(std::move(attach)),
      files_("netflow", "httpflow-tls: ", options_.proc_root, FindTlsFiles,
             [this](const proc::FoundFile& file) { return AttachFile(file); }) {}

TlsCoverage::~TlsCoverage() { Stop(); }

std::optional<Status> TlsCoverage::AttachFile(const proc::FoundFile& file) {
  switch (file.kind) {
    case kTlsLibssl3:
      return attach_(file.target);
    case kTlsOtherLib:
      return Status::Error(ClassifyTlsLibrary(file.path).value_or("not OpenSSL 3"));
    case kTlsExecutable: {
      Result<ElfTls> elf = InspectElf(file.target);
      if (!elf.ok()) return std::nullopt;  // a script's interpreter, a non-ELF: nothing to see
      if (elf->ssl_functions) {
        Status attached = attach_(file.target);
        if (attached.ok()) return attached;
        return Status::Error("OpenSSL built into the executable: " + attached.message());
      }
      if (elf->go) return Status::Error("Go binary: crypto/tls is not covered");
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

void TlsCoverage::Start(const std::vector<std::string>& host_libraries) {
  for (const std::string& path : host_libraries) {
    if (access(path.c_str(), R_OK) == 0) files_.OfferFile(path, kTlsLibssl3);
  }
  files_.Scan();
  next_rescan_ = std::chrono::steady_clock::now() + options_.rescan_every;
  std::lock_guard lock(mu_);
  if (stopped_ || thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void TlsCoverage::OnExec(uint32_t pid) {
  std::lock_guard lock(mu_);
  if (stopped_ || pending_.size() + options_.exec_delays.size() > kMaxPending) return;
  const auto now = std::chrono::steady_clock::now();
  for (std::chrono::milliseconds delay : options_.exec_delays) pending_.emplace(now + delay, pid);
  wake_.notify_one();
}

void TlsCoverage::RunDue(std::chrono::steady_clock::time_point now) {
  std::vector<uint32_t> due;
  {
    std::lock_guard lock(mu_);
    while (!pending_.empty() && pending_.begin()->first <= now) {
      due.push_back(pending_.begin()->second);
      pending_.erase(pending_.begin());
    }
  }
  for (uint32_t pid : due) files_.Offer(pid);
  if (now >= next_rescan_) {
    files_.Scan();
    next_rescan_ = now + options_.rescan_every;
  }
}

void TlsCoverage::Loop() {
  std::unique_lock lock(mu_);
  while (!stopped_) {
    auto until = next_rescan_;
    if (!pending_.empty() && pending_.begin()->first < until) until = pending_.begin()->first;
    // Woken early by an exec (its time may come before `until`) or Stop; spurious wakes only
    // cost a look at the queue.
    wake_.wait_until(lock, until);
    if (stopped_) break;
    lock.unlock();
    RunDue(std::chrono::steady_clock::now());
    lock.lock();
  }
}

void TlsCoverage::Stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    pending_.clear();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string TlsCoverage::Coverage() const {
  std::string covered, uncovered;
  size_t listed = 0, more = 0;
  for (const proc::FileProbes::File& file : files_.Files()) {
    const std::string seen = Plural(file.processes, "process");
    if (file.attached) {
      covered += (covered.empty() ? "" : ", ") + file.path + " (" + seen +
                 (file.kind == kTlsExecutable ? ", OpenSSL built in" : "") + ")";
    } else if (listed < options_.status_files) {
      ++listed;
      uncovered +=
          (uncovered.empty() ? "" : "; ") + file.path + " (" + file.error + ", " + seen + ")";
    } else {
      ++more;
    }
  }
  if (more > 0) uncovered += "; and " + std::to_string(more) + " more files";
  return "OpenSSL 3 (SSL_read, SSL_write, their _ex variants) of every process that maps " +
         (covered.empty() ? std::string("no libssl.so.3 found yet") : covered) +
         "; libssl.so.3 files are probed as processes map them, statically linked OpenSSL "
         "only when the executable exports SSL_read and SSL_write; not covered: " +
         (uncovered.empty() ? std::string("no process seen with another TLS library") : uncovered);
}

}  // namespace nodescope::sensor::netflow
