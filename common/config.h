// A typed option table shared by every binary: defaults live in the bound struct, a YAML file
// overrides them, NODESCOPE_<OPTION> environment variables override the file. Errors name the key
// and what it accepts, in one line.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace YAML {
class Node;
}

namespace nodescope::config {

// `s` in double quotes, escaped as YAML does: an error that quotes a value stays on one line.
std::string Quote(const std::string& s);

using Duration = std::chrono::nanoseconds;

// Parses "60s", "500ms", "1m30s", "250us", "2h". A bare number is rejected: the unit is required.
Result<Duration> ParseDuration(const std::string& text);
std::string FormatDuration(Duration d);
// Parses "HOST:PORT", "[v6]:PORT" or ":PORT" (all interfaces). Port 1-65535.
Status CheckAddress(const std::string& text);

struct OptionDoc {
  std::string name;
  std::string type;      // "string", "bool", "int", "duration", "list", "map", "address"
  std::string default_value;
  std::string help;
};

class Schema {
 public:
  explicit Schema(std::string binary) : binary_(std::move(binary)) {}

  void String(const std::string& name, std::string* target, std::string help,
              std::function<Status(const std::string&)> check = {});
  void Address(const std::string& name, std::string* target, std::string help);
  // A string that must be one of `allowed` (e.g. log_level).
  void Choice(const std::string& name, std::string* target, std::vector<std::string> allowed,
              std::string help);
  void Bool(const std::string& name, bool* target, std::string help);
  void Int(const std::string& name, int64_t* target, int64_t min, int64_t max, std::string help);
  void Dur(const std::string& name, Duration* target, Duration min, Duration max,
           std::string help);
  // A list of strings; when `allowed` is not empty every item must be one of them.
  // In the environment: comma-separated.
  void List(const std::string& name, std::vector<std::string>* target,
            std::vector<std::string> allowed, std::string help);
  // A string -> string map; in the environment: "k=v,k2=v2".
  void Map(const std::string& name, std::map<std::string, std::string>* target, std::string help);

  // Reads a YAML file (an empty file is all defaults). Errors: "config FILE: key 'x': ...".
  Status LoadFile(const std::string& path);
  Status LoadText(const std::string& text, const std::string& origin);
  // Applies NODESCOPE_<NAME> (upper case) variables found through `getenv`.
  Status LoadEnv(const std::function<const char*(const char*)>& getenv);
  // The effective configuration as YAML, every option with its current value.
  std::string Print() const;
  std::vector<OptionDoc> Docs() const;

 private:
  struct Option {
    OptionDoc doc;
    std::function<Status(const YAML::Node&)> from_yaml;
    std::function<Status(const std::string&)> from_env;
    std::function<std::string()> print;  // YAML flow text of the current value
  };
  void Add(Option option);

  std::string binary_;
  std::vector<Option> options_;
};

}  // namespace nodescope::config
