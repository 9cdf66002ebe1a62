#include "tests/integration/wrk.h"

#include <memory>
#include <sstream>
#include <vector>

#include "tests/integration/harness.h"

namespace nodescope::test {
namespace {

// wrk prints figures as a number and a unit: "16.00MB", "812.00us".
bool SplitFigure(const std::string& text, double* value, std::string* unit) {
  size_t used = 0;
  try {
    *value = std::stod(text, &used);
  } catch (const std::exception&) {
    return false;
  }
  *unit = text.substr(used);
  return true;
}

// "16.00MB" -> 16777216; wrk scales by 1024.
bool ParseBytes(const std::string& text, double* out) {
  double v = 0;
  std::string unit;
  if (!SplitFigure(text, &v, &unit)) return false;
  static const char* kUnits[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  double scale = 1;
  for (const char* u : kUnits) {
    if (unit == u) {
      *out = v * scale;
      return true;
    }
    scale *= 1024;
  }
  return false;
}

// "812.00us" / "1.20ms" / "2.00s" -> microseconds.
bool ParseDuration(const std::string& text, double* us) {
  double v = 0;
  std::string unit;
  if (!SplitFigure(text, &v, &unit)) return false;
  if (unit == "us")
    *us = v;
  else if (unit == "ms")
    *us = v * 1e3;
  else if (unit == "s")
    *us = v * 1e6;
  else if (unit == "m")
    *us = v * 60e6;
  else if (unit == "h")
    *us = v * 3600e6;
  else
    return false;
  return true;
}

}  // namespace

Result<WrkResult> ParseWrkOutput(const std::string& out) {
  WrkResult r;
  r.output = out;
  bool have_total = false, have_rps = false, have_tps = false, in_distribution = false;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream in(line);
    std::vector<std::string> t;
    for (std::string tok; in >> tok;) t.push_back(tok);
    if (t.empty()) continue;
    const Status bad = Status::Error("wrk: cannot parse: " + line);
    if (t[0] == "Latency" && t.size() == 2 && t[1] == "Distribution") {
      in_distribution = true;
      continue;
    }
    if (in_distribution && t.size() == 2 && t[0].back() == '%') {
      // "50%  133.00us"
      double us = 0;
      if (!ParseDuration(t[1], &us)) return bad;
      if (t[0] == "50%") r.latency_p50_us = us;
      if (t[0] == "90%") r.latency_p90_us = us;
      if (t[0] == "99%") r.latency_p99_us = us;
      continue;
    }
    in_distribution = false;
    if (t.size() >= 6 && t[1] == "requests" && t[2] == "in" && t.back() == "read") {
      // "22488 requests in 1.10s, 27.11MB read"
      double us = 0;
      std::string dur = t[3];
      if (!dur.empty() && dur.back() == ',') dur.pop_back();
      if (!ParseDuration(dur, &us) || !ParseBytes(t[4], &r.bytes_read)) return bad;
      r.requests = std::stoull(t[0]);
      r.duration_s = us / 1e6;
      have_total = true;
    } else if (t[0] == "Requests/sec:" && t.size() == 2) {
      r.requests_per_sec = std::stod(t[1]);
      have_rps = true;
    } else if (t[0] == "Transfer/sec:" && t.size() == 2) {
      if (!ParseBytes(t[1], &r.transfer_bytes_per_sec)) return bad;
      have_tps = true;
    } else if (t[0] == "Latency" && t.size() == 5) {
      // "Latency   618.73us    1.03ms   8.87ms   85.39%": avg, stdev, max, share within stdev
      if (!ParseDuration(t[1], &r.latency_avg_us) || !ParseDuration(t[3], &r.latency_max_us))
        return bad;
    } else if (line.find("Non-2xx or 3xx responses:") != std::string::npos) {
      r.non_2xx_3xx = std::stoull(t.back());
    } else if (t[0] == "Socket" && t.size() == 10 && t[1] == "errors:") {
      // "Socket errors: connect 0, read 0, write 0, timeout 0"
      for (size_t i = 3; i < t.size(); i += 2) r.socket_errors += std::stoull(t[i]);
    }
  }
  if (!have_total || !have_rps || !have_tps) return Status::Error("wrk: no summary in: " + out);
  return r;
}

Result<WrkResult> RunWrk(const WrkOptions& o) {
  std::unique_ptr<Netns> root = Netns::Root();
  const Netns* ns = o.ns ? o.ns : root.get();
  if (Which("wrk").empty()) return Status::Error("wrk not installed (scripts/install-deps.sh)");
  CommandResult c = RunCommand(
      ns->Exec({"wrk", "-t", std::to_string(o.threads), "-c", std::to_string(o.connections), "-d",
                std::to_string(o.duration.count()) + "s", "--latency", o.url}),
      o.duration + std::chrono::seconds(30));
  if (c.exit_code != 0) {
    return Status::Error("wrk exit " + std::to_string(c.exit_code) + ": " + c.err + c.out);
  }
  return ParseWrkOutput(c.out);
}

}  // namespace nodescope::test
