// libFuzzer target for the config loader (registered with nodescope_fuzz in common/CMakeLists.txt;
// config_fuzz_test links this file too and replays testdata/fuzz/ through CheckConfigInput()).
//
// One input is a YAML file, optionally followed by a line "### env" and NODESCOPE_X=value
// entries (one per line or NUL-separated) that stand for the environment. It is loaded into the
// sensor's real schema and into a schema with one option of every kind the loader has (the
// aggregator's schema uses the same kinds). Invariants: no crash or sanitizer report; a refused
// input gets a one-line message that says where (file or variable); an accepted one prints
// (--print-config) to YAML that loads again to the same values and prints the same.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "sensor/config.h"

namespace nodescope::config {

std::string CheckConfigInput(const uint8_t* data, size_t size);  // the unit test calls this too

namespace {

constexpr std::string_view kEnvMarker = "### env\n";

// One option of every kind, a string with its own check and a list with and without allowed
// values included.
struct AllKinds {
  std::string text = "plain";
  std::string checked = "abc";
  std::string address = "127.0.0.1:9970";
  std::string choice = "info";
  bool flag = false;
  int64_t number = 5;
  Duration duration = std::chrono::seconds(60);
  std::vector<std::string> free_list = {"a"};
  std::vector<std::string> choice_list = {"x"};
  std::map<std::string, std::string> map;
  bool operator==(const AllKinds&) const = default;
};

Schema AllKindsSchema(AllKinds* c) {
  Schema s("fuzz");
  s.String("text", &c->text, "any string");
  s.String("checked", &c->checked, "three letters", [](const std::string& v) {
    return v.size() == 3 ? Status::Ok() : Status::Error("expected three letters");
  });
  s.Address("address", &c->address, "HOST:PORT");
  s.Choice("choice", &c->choice, {"debug", "info"}, "a choice");
  s.Bool("flag", &c->flag, "a bool");
  s.Int("number", &c->number, -10, 1'000'000, "an int");
  s.Dur("duration", &c->duration, Duration(1), std::chrono::hours(24 * 365), "a duration");
  s.List("free_list", &c->free_list, {}, "any strings");
  s.List("choice_list", &c->choice_list, {"x", "y", "z"}, "some of x, y, z");
  s.Map("map", &c->map, "a map");
  return s;
}

// A refused load: a message, on one line, starting with where the bad value came from.
std::string CheckRefusal(const Status& s, std::string_view prefix) {
  const std::string& m = s.message();
  if (m.empty()) return "refused without a message";
  if (m.find('\n') != std::string::npos || m.find('\r') != std::string::npos) {
    return "a message of more than one line: " + m;
  }
  if (m.compare(0, prefix.size(), prefix) != 0) return "a message not saying where: " + m;
  return "";
}

// Loads file and environment into a fresh config; once accepted, the printed form must load into
// another fresh config to the same values. `same` compares two configs.
template <typename Config, typename Build, typename Same>
std::string Exercise(const std::string& yaml, const std::map<std::string, std::string>& env,
                     Build build, Same same) {
  Config config;
  Schema schema = build(&config);
  Status s = schema.LoadText(yaml, "fuzz.yaml");
  if (!s.ok()) return CheckRefusal(s, "config fuzz.yaml: ");
  s = schema.LoadEnv([&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  if (!s.ok()) return CheckRefusal(s, "environment NODESCOPE_");
  const std::string printed = schema.Print();
  Config again;
  Schema reload = build(&again);
  s = reload.LoadText(printed, "printed");
  if (!s.ok()) return "the printed config does not load: " + s.message() + "\n" + printed;
  if (reload.Print() != printed) {
    return "the printed config loads to other values:\n" + printed + "---\n" + reload.Print();
  }
  if (!same(config, again)) return "the printed config loads to other values:\n" + printed;
  return "";
}

bool SameSensorConfig(const sensor::SensorConfig&, const sensor::SensorConfig&) {
  return true;  // no operator==: the equal Print() above compares every option
}

}  // namespace

std::string CheckConfigInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::string yaml = input;
  std::map<std::string, std::string> env;
  if (size_t at = input.find(kEnvMarker); at != std::string::npos) {
    yaml = input.substr(0, at);
    std::string_view rest = std::string_view(input).substr(at + kEnvMarker.size());
    while (!rest.empty()) {
      const size_t end = rest.find_first_of(std::string_view("\n\0", 2));
      const std::string_view entry = rest.substr(0, end);
      rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
      const size_t eq = entry.find('=');
      if (eq != std::string_view::npos)
        env[std::string(entry.substr(0, eq))] = entry.substr(eq + 1);
    }
  }

  // The duration syntax on its own: whatever parses formats to text that parses to the same.
  if (Result<Duration> d = ParseDuration(yaml); d.ok()) {
    Result<Duration> again = ParseDuration(FormatDuration(*d));
    if (!again.ok() || *again != *d) return "duration " + yaml + " does not format round";
  } else if (std::string why = CheckRefusal(d.status(), "expected a duration"); !why.empty()) {
    return why;
  }
  if (Status s = CheckAddress(yaml); !s.ok()) {
    if (std::string why = CheckRefusal(s, "expected HOST:PORT"); !why.empty()) return why;
  }

  std::string why =
      Exercise<sensor::SensorConfig>(yaml, env, sensor::BuildSchema, SameSensorConfig);
  if (!why.empty()) return "sensor schema: " + why;
  why = Exercise<AllKinds>(yaml, env, AllKindsSchema,
                           [](const AllKinds& a, const AllKinds& b) { return a == b; });
  if (!why.empty()) return "all-kinds schema: " + why;
  return "";
}

}  // namespace nodescope::config

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string why = nodescope::config::CheckConfigInput(data, size);
  if (!why.empty()) {
    std::fprintf(stderr, "invariant broken: %s\n", why.c_str());
    std::abort();
  }
  return 0;
}
