#include "aggregator/api/bearer_token.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>
#include <strings.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nodescope::aggregator::api {
namespace {

// A token is a line of printable text; a file this large is the wrong file.
constexpr off_t kMaxTokenFileBytes = 64 * 1024;

std::string Digest(const std::string& text) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof(out));
}

std::string Trim(const std::string& s) {
  const char* space = " \t\r\n";
  size_t b = s.find_first_not_of(space);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(space) - b + 1);
}

}  // namespace

Result<std::string> BearerToken::ReadToken(const std::string& option, const std::string& path) {
  const std::string where = option + " \"" + path + "\"";
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Status::Error(where + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Status::Error(where + ": not a regular file");
  if (st.st_size > kMaxTokenFileBytes) {
    return Status::Error(where + ": larger than 64 KiB, not a token file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(where + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  const std::string token = Trim(text.str());
  if (token.empty()) return Status::Error(where + ": the file is empty");
  if (token.find_first_of(" \t\r\n") != std::string::npos) {
    return Status::Error(where + ": holds more than one word; the token is a single line");
  }
  return token;
}

Result<std::unique_ptr<BearerToken>> BearerToken::Open(const std::string& option,
                                                       const std::string& path) {
  std::unique_ptr<BearerToken> token(new BearerToken(option, path));
  std::lock_guard lock(token->mu_);
  token->ReloadIfChangedLocked();
  if (token->digest_.empty()) {
    Status s = ReadToken(option, path).status();
    return s.ok() ? Status::Error(option + " \"" + path + "\": changed while being read") : s;
  }
  return token;
}

void BearerToken::ReloadIfChangedLocked() {
  struct stat st {};
  Stamp now;
  if (stat(path_.c_str(), &st) == 0) now = {st.st_ino, st.st_size, st.st_mtim};
  if (now == stamp_ && !digest_.empty()) return;
  auto token = ReadToken(option_, path_);
  if (!token.ok()) {
    // Kubelet swaps a Secret's files through a symlink; a read in between fails once. The next
    // call tries again (the stamp is not taken) and the old token holds meanwhile.
    if (!reload_failed_ && !digest_.empty()) {
      spdlog::warn("{} (keeping the previous token)", token.status().message());
    }
    reload_failed_ = true;
    return;
  }
  if (!digest_.empty()) spdlog::info("{} \"{}\": token reloaded", option_, path_);
  stamp_ = now;
  digest_ = Digest(*token);
  reload_failed_ = false;
}

Status BearerToken::Check(const std::string* authorization) {
  if (authorization == nullptr) {
    return Status::Error("missing bearer token (metadata authorization: Bearer <token>)");
  }
  constexpr char kScheme[] = "Bearer ";
  constexpr size_t kSchemeLength = sizeof(kScheme) - 1;
  if (authorization->size() <= kSchemeLength ||
      strncasecmp(authorization->c_str(), kScheme, kSchemeLength) != 0) {
    return Status::Error("authorization metadata is not \"Bearer <token>\"");
  }
  const std::string presented = Digest(Trim(authorization->substr(kSchemeLength)));
  std::lock_guard lock(mu_);
  ReloadIfChangedLocked();
  if (CRYPTO_memcmp(presented.data(), digest_.data(), digest_.size()) != 0) {
    return Status::Error("wrong bearer token");
  }
  return Status::Ok();
}

}  // namespace nodescope::aggregator::api
