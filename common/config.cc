#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

namespace nodescope::config {
namespace {

// The YAML double-quoted form without the quotes: what Print() writes loads back to the same
// bytes, and an error that quotes a value stays on one line.
std::string Escaped(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  return out;
}


std::string Join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> out;
  if (Trim(text).empty()) return out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(Trim(item));
  return out;
}

// A scalar as the user wrote it; an error for sequences and maps.
Result<std::string> Scalar(const YAML::Node& node, const std::string& expected) {
  if (node.IsNull()) return std::string();
  if (!node.IsScalar()) return Status::Error("expected " + expected + ", got a " +
                                             (node.IsSequence() ? "list" : "map"));
  return node.Scalar();
}

Result<bool> ParseBool(const std::string& text) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), ::tolower);
  if (t == "true" || t == "yes" || t == "on" || t == "1") return true;
  if (t == "false" || t == "no" || t == "off" || t == "0") return false;
  return Status::Error("expected true or false, got " + Quote(text));
}

Result<int64_t> ParseInt(const std::string& text, int64_t min, int64_t max) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr != end || text.empty()) {
    return Status::Error("expected an integer from " + std::to_string(min) + " to " +
                         std::to_string(max) + ", got " + Quote(text));
  }
  if (v < min || v > max) {
    return Status::Error("expected an integer from " + std::to_string(min) + " to " +
                         std::to_string(max) + ", got " + text);
  }
  return v;
}

}  // namespace

std::string Quote(const std::string& s) { return "\"" + Escaped(s) + "\""; }

Result<Duration> ParseDuration(const std::string& raw) {
  const std::string text = Trim(raw);
  const auto bad = [&]() {
    return Status::Error("expected a duration such as 60s, 500ms or 1m30s, got " + Quote(raw));
  };
  if (text.empty()) return bad();
  struct Unit {
    const char* name;
    int64_t ns;
  };
  // Longest names first so "ms" is not read as "m" followed by garbage.
  static const Unit kUnits[] = {{"ns", 1},
                                {"us", 1'000},
                                {"µs", 1'000},
                                {"ms", 1'000'000},
                                {"s", 1'000'000'000},
                                {"m", 60'000'000'000},
                                {"h", 3'600'000'000'000}};
  // Exact integer arithmetic: a double loses nanoseconds above 2^53 ns (104 days), so a long
  // duration printed by --print-config would not load back to itself (found by fuzz_config).
  __int128 total = 0;
  size_t i = 0;
  while (i < text.size()) {
    __int128 whole = 0;
    __int128 fraction = 0;  // the first 18 decimals; further ones are below a nanosecond here
    __int128 scale = 1;
    size_t digits = 0;
    bool dot = false;
    for (; i < text.size(); ++i) {
      const char c = text[i];
      if (c == '.' && !dot) {
        dot = true;
        continue;
      }
      if (c < '0' || c > '9') break;
      ++digits;
      if (!dot) {
        whole = whole * 10 + (c - '0');
        if (whole > INT64_MAX) return bad();
      } else if (scale < 1'000'000'000'000'000'000) {
        fraction = fraction * 10 + (c - '0');
        scale *= 10;
      }
    }
    if (digits == 0) return bad();  // "." or a unit without a number
    const Unit* unit = nullptr;
    for (const auto& u : kUnits) {
      size_t n = std::char_traits<char>::length(u.name);
      if (text.compare(i, n, u.name) == 0) {
        unit = &u;
        i += n;
        break;
      }
    }
    if (unit == nullptr) return bad();
    total += whole * unit->ns + fraction * unit->ns / scale;
    if (total > INT64_MAX) return bad();
  }
  return Duration(static_cast<int64_t>(total));
}

std::string FormatDuration(Duration d) {
  int64_t ns = d.count();
  struct Unit {
    const char* name;
    int64_t ns;
  };
  static const Unit kUnits[] = {
      {"h", 3'600'000'000'000}, {"m", 60'000'000'000}, {"s", 1'000'000'000},
      {"ms", 1'000'000},        {"us", 1'000},         {"ns", 1}};
  if (ns == 0) return "0s";
  for (const auto& u : kUnits) {
    if (ns % u.ns == 0) return std::to_string(ns / u.ns) + u.name;
  }
  return std::to_string(ns) + "ns";
}

Status CheckAddress(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return Status::Error("expected HOST:PORT (e.g. 127.0.0.1:9970, [::1]:9970, :9970), got " +
                         Quote(text) + ": " + why);
  };
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  std::string host = text.substr(0, colon);
  std::string port = text.substr(colon + 1);
  if (!host.empty() && host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return bad("unbalanced brackets");
  } else if (host.find(':') != std::string::npos) {
    return bad("IPv6 addresses go in brackets");
  }
  for (char c : host) {
    if (std::isspace(static_cast<unsigned char>(c))) return bad("space in host");
  }
  auto p = ParseInt(port, 1, 65535);
  if (!p.ok()) return bad("port must be 1-65535");
  return Status::Ok();
}

void Schema::Add(Option option) { options_.push_back(std::move(option)); }

void Schema::String(const std::string& name, std::string* target, std::string help,
                    std::function<Status(const std::string&)> check) {
  auto set = [target, check](const std::string& v) -> Status {
    if (check) {
      Status s = check(v);
      if (!s.ok()) return s;
    }
    *target = v;
    return Status::Ok();
  };
  Add({{name, "string", *target, std::move(help)},
       [set](const YAML::Node& n) -> Status {
         auto v = Scalar(n, "a string");
         return v.ok() ? set(v.value()) : v.status();
       },
       set, [target]() { return Quote(*target); }});
}

void Schema::Address(const std::string& name, std::string* target, std::string help) {
  String(name, target, std::move(help), CheckAddress);
  options_.back().doc.type = "address";
}

void Schema::Choice(const std::string& name, std::string* target,
                    std::vector<std::string> allowed, std::string help) {
  String(name, target, help + " (one of: " + Join(allowed, ", ") + ")",
         [allowed](const std::string& v) {
           if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return Status::Ok();
           return Status::Error("expected one of " + Join(allowed, ", ") + ", got " + Quote(v));
         });
}

void Schema::Bool(const std::string& name, bool* target, std::string help) {
  auto set = [target](const std::string& v) -> Status {
    auto b = ParseBool(v);
    if (!b.ok()) return b.status();
    *target = b.value();
    return Status::Ok();
  };
  Add({{name, "bool", *target ? "true" : "false", std::move(help)},
       [set](const YAML::Node& n) -> Status {
         auto v = Scalar(n, "true or false");
         return v.ok() ? set(v.value()) : v.status();
       },
       set, [target]() { return std::string(*target ? "true" : "false"); }});
}

void Schema::Int(const std::string& name, int64_t* target, int64_t min, int64_t max,
                 std::string help) {
  auto set = [target, min, max](const std::string& v) -> Status {
    auto i = ParseInt(Trim(v), min, max);
    if (!i.ok()) return i.status();
    *target = i.value();
    return Status::Ok();
  };
  Add({{name, "int", std::to_string(*target), std::move(help)},
       [set](const YAML::Node& n) -> Status {
         auto v = Scalar(n, "an integer");
         return v.ok() ? set(v.value()) : v.status();
       },
       set, [target]() { return std::to_string(*target); }});
}

void Schema::Dur(const std::string& name, Duration* target, Duration min, Duration max,
                 std::string help) {
  auto set = [target, min, max](const std::string& v) -> Status {
    auto d = ParseDuration(v);
    if (!d.ok()) return d.status();
    if (d.value() < min || d.value() > max) {
      return Status::Error("expected a duration from " + FormatDuration(min) + " to " +
                           FormatDuration(max) + ", got " + Trim(v));
    }
    *target = d.value();
    return Status::Ok();
  };
  Add({{name, "duration", FormatDuration(*target), std::move(help)},
       [set](const YAML::Node& n) -> Status {
         auto v = Scalar(n, "a duration such as 60s");
         return v.ok() ? set(v.value()) : v.status();
       },
       set, [target]() { return FormatDuration(*target); }});
}

void Schema::List(const std::string& name, std::vector<std::string>* target,
                  std::vector<std::string> allowed, std::string help) {
  auto set = [target, allowed](const std::vector<std::string>& items) -> Status {
    if (!allowed.empty()) {
      for (const auto& item : items) {
        if (std::find(allowed.begin(), allowed.end(), item) == allowed.end()) {
          return Status::Error(Quote(item) + " is not one of: " + Join(allowed, ", "));
        }
      }
    }
    *target = items;
    return Status::Ok();
  };
  auto print = [target]() {
    std::vector<std::string> quoted;
    for (const auto& s : *target) quoted.push_back(Quote(s));
    return "[" + Join(quoted, ", ") + "]";
  };
  std::string help_text = help;
  if (!allowed.empty()) help_text += " (any of: " + Join(allowed, ", ") + ")";
  Add({{name, "list", print(), help_text},
       [set](const YAML::Node& n) -> Status {
         std::vector<std::string> items;
         if (n.IsNull()) return set(items);
         if (!n.IsSequence()) return Status::Error("expected a list such as [a, b]");
         for (const auto& item : n) {
           if (!item.IsScalar()) return Status::Error("expected a list of strings");
           items.push_back(item.Scalar());
         }
         return set(items);
       },
       [set](const std::string& v) { return set(SplitCommas(v)); }, print});
}

void Schema::Map(const std::string& name, std::map<std::string, std::string>* target,
                 std::string help) {
  auto print = [target]() {
    std::vector<std::string> pairs;
    for (const auto& [k, v] : *target) pairs.push_back(Quote(k) + ": " + Quote(v));
    return "{" + Join(pairs, ", ") + "}";
  };
  Add({{name, "map", print(), std::move(help)},
       [target](const YAML::Node& n) -> Status {
         std::map<std::string, std::string> m;
         if (!n.IsNull()) {
           if (!n.IsMap()) return Status::Error("expected a map of strings such as {k: v}");
           for (const auto& kv : n) {
             if (!kv.second.IsScalar() && !kv.second.IsNull()) {
               return Status::Error("value of " + Quote(kv.first.Scalar()) +
                                    " must be a string");
             }
             m[kv.first.Scalar()] = kv.second.IsNull() ? "" : kv.second.Scalar();
           }
         }
         *target = std::move(m);
         return Status::Ok();
       },
       [target](const std::string& v) -> Status {
         std::map<std::string, std::string> m;
         for (const auto& pair : SplitCommas(v)) {
           size_t eq = pair.find('=');
           if (eq == std::string::npos || eq == 0) {
             return Status::Error("expected k=v pairs separated by commas, got " + Quote(pair));
           }
           m[Trim(pair.substr(0, eq))] = Trim(pair.substr(eq + 1));
         }
         *target = std::move(m);
         return Status::Ok();
       },
       print});
}

Status Schema::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Error("config " + path + ": cannot read the file");
  std::stringstream text;
  text << in.rdbuf();
  return LoadText(text.str(), path);
}

Status Schema::LoadText(const std::string& text, const std::string& origin) {
  const std::string where = "config " + origin + ": ";
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status::Error(where + "not valid YAML at line " + std::to_string(e.mark.line + 1) +
                         ": " + Escaped(e.msg));  // it may quote the bad character
  }
  if (root.IsNull()) return Status::Ok();
  if (!root.IsMap()) return Status::Error(where + "expected a map of option: value at the top");
  std::set<std::string> seen;
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar();
    auto it = std::find_if(options_.begin(), options_.end(),
                           [&](const Option& o) { return o.doc.name == key; });
    if (it == options_.end()) {
      std::vector<std::string> known;
      for (const auto& o : options_) known.push_back(o.doc.name);
      return Status::Error(where + "unknown key '" + Escaped(key) + "' (" + binary_ +
                           " accepts: " + Join(known, ", ") + ")");
    }
    if (!seen.insert(key).second) return Status::Error(where + "key '" + key + "' given twice");
    Status s = it->from_yaml(kv.second);
    if (!s.ok()) return s.Prefixed(where + "key '" + key + "': ");
  }
  return Status::Ok();
}

Status Schema::LoadEnv(const std::function<const char*(const char*)>& getenv) {
  for (auto& option : options_) {
    std::string var = "NODESCOPE_";
    for (char c : option.doc.name) var += static_cast<char>(std::toupper(c));
    const char* value = getenv(var.c_str());
    if (value == nullptr) continue;
    Status s = option.from_env(value);
    if (!s.ok()) return s.Prefixed("environment " + var + ": ");
  }
  return Status::Ok();
}

std::string Schema::Print() const {
  std::string out = "# effective " + binary_ + " configuration\n";
  for (const auto& option : options_) out += option.doc.name + ": " + option.print() + "\n";
  return out;
}

std::vector<OptionDoc> Schema::Docs() const {
  std::vector<OptionDoc> docs;
  for (const auto& option : options_) docs.push_back(option.doc);
  return docs;
}

}  // namespace nodescope::config
