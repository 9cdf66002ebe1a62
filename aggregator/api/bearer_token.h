// The observer API's bearer token: a file holding one token (a Kubernetes Secret key, a file an
// operator writes), re-read when it changes so the token rotates without a restart. Clients send
// it as `authorization: Bearer <token>` metadata.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"

namespace nodescope::aggregator::api {

class BearerToken {
 public:
  // Reads the file: it must exist and hold a non-empty token (surrounding whitespace and the
  // trailing newline are not part of it). `option` names the file in messages.
  static Result<std::unique_ptr<BearerToken>> Open(const std::string& option,
                                                   const std::string& path);
  // The check Open does, for configuration checks before start.
  static Result<std::string> ReadToken(const std::string& option, const std::string& path);

  // Checks the value of an `authorization` header (nullptr: absent). Re-reads the file first when
  // its inode, size or modification time changed; a file that became unreadable or empty keeps
  // the previous token (and says so once in the log). The presented and the expected token are
  // compared as SHA-256 digests with CRYPTO_memcmp: the time taken tells nothing of either.
  Status Check(const std::string* authorization);

 private:
  BearerToken(std::string option, std::string path) : option_(option), path_(path) {}
  struct Stamp {
    ino_t inode = 0;
    off_t size = -1;
    timespec mtime{};
    bool operator==(const Stamp& o) const {
      return inode == o.inode && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
             mtime.tv_nsec == o.mtime.tv_nsec;
    }
  };
  void ReloadIfChangedLocked();

  const std::string option_;
  const std::string path_;
  std::mutex mu_;
  Stamp stamp_;
  std::string digest_;  // SHA-256 of the token
  bool reload_failed_ = false;
};

}  // namespace nodescope::aggregator::api
