// The runs bench_netflow is made of: the processes it starts (aggregator, nginx servers, a sensor
// with or without the netflow probe) and one measured run of each kind, with a reading of where
// the machine's CPU went during it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "bench/child.h"
#include "bench/cpu_accounting.h"
#include "common/status.h"
#include "tests/integration/nginx.h"

namespace nodescope::bench {

struct Args {
  std::string bin_dir;
  int pairs = 6;  // even: as many pairs run with the probe first as without
  int max_reruns = 3;
  int seconds = 5;
  int cost_rounds = 2;
  int cost_seconds = 5;
  int interval_s = 1;
  int nginx_workers = 2;
  // After a start the sensor reads /proc and walks the sockets that already exist, and the
  // previous sensor's programs are still being freed: this long keeps that out of the window.
  int settle_ms = 1000;
  bool keep_temp = false;
  // Both sides of every throughput pair run the baseline sensor: the ratio then shows what the
  // method itself reads when nothing differs (ideally 1). The sensor-cost part is skipped.
  bool calibrate = false;
  // The part measured is httpflow: both sides run ebpf-net, the baseline with l7net_enabled: []
  // (netflow alone), the other with httpflow (payload copied and parsed).
  bool httpflow = false;
  // The part measured is ebpf-kernel with its default families: the baseline runs no plugin,
  // the other side ebpf-kernel alone.
  bool kernel = false;
};

// Everything that lives for the whole bench.
struct Bench {
  Args args;
  std::filesystem::path dir;  // configs and logs
  int grpc_port = 0;
  std::unique_ptr<ChildProcess> aggregator;  // no sinks: records stay in its history
  std::unique_ptr<test::Nginx> keepalive;    // /1k.bin on keep-alive connections
  std::unique_ptr<test::Nginx> closing;      // /1k.bin, every connection closed after a response
  std::unique_ptr<test::Nginx> bulk;         // /10m.bin on keep-alive connections
  int sensor_starts = 0;

  // This process, the aggregator, and every nginx master and worker.
  std::set<pid_t> OurPids() const;
};

// Starts the aggregator and the nginx servers.
Status SetUp(Bench& bench);
// Stops them; an error when the aggregator does not stop cleanly on SIGTERM.
Status TearDown(Bench& bench);

// CPU-seconds spent during one measured window, by whom.
struct Window {
  double wall = 0;    // seconds
  double busy = 0;    // the whole machine (/proc/stat), all processors together
  double irq = 0;     // hardirq + softirq
  double steal = 0;   // taken by the hypervisor for other guests
  double sensor = 0;  // the sensor process's utime + stime
  double aggregator = 0;
  double nginx = 0;  // master + workers of the nginx the window's traffic went to
  double wrk = 0;    // reaped children: wrk, which ends inside the window
  double self = 0;   // this process
  // The sensor's BPF programs by name: run time and runs during the window (zero unless the
  // kernel's BPF statistics are on). Their time is inside nginx, wrk and irq above.
  std::map<std::string, BpfProgramRun> bpf;

  // Whatever else ran on the machine: processes of other users, short-lived commands. Without
  // CONFIG_IRQ_TIME_ACCOUNTING (this machine) softirq is charged to the process it interrupted,
  // so it is inside the figures above and not subtracted again.
  double other() const { return busy - steal - sensor - aggregator - nginx - wrk - self; }
};

// How long a window goes on after wrk ends: one netflow interval and a half second, so the
// sensor's work for the last connections falls inside it on both sides.
std::chrono::milliseconds WindowTail(const Args& args);

struct ThroughputRun {
  double requests_per_sec = 0;
  uint64_t requests = 0;
  uint64_t errors = 0;  // wrk's socket errors and non-2xx responses
  Window window;

  // Requests per CPU-second of everything the requests cost (nginx, wrk, softirq and BPF inside
  // them, the sensor, the aggregator). Other load on the machine takes CPU away from these and
  // their requests alike, so this moves much less with it than requests per second does.
  double RequestsPerCpuSecond() const {
    return requests / (window.nginx + window.wrk + window.sensor + window.aggregator);
  }
  // The sensor process's own CPU per request, in microseconds (its BPF programs run inside
  // nginx and wrk and are not in it).
  double SensorMicrosPerRequest() const { return window.sensor / requests * 1e6; }
};
// A fresh sensor (netflow on or off), args.settle_ms to settle, then wrk against bench.keepalive.
Result<ThroughputRun> RunThroughput(Bench& bench, bool netflow);

struct CostRun {
  // New connections: wrk against bench.closing.
  Window connect;
  uint64_t connections = 0;    // access-log entries: one connection each
  double connect_seconds = 0;  // wrk's own duration
  double closes = -1;          // TCP closes the netflow probe read (-1: probe off)
  double drops = 0;            // close events the probe could not queue, or sockets untracked
  // Bulk transfer: wrk against bench.bulk.
  Window bulk;
  uint64_t bytes = 0;  // $bytes_sent of the access-log entries written during the window
  double bulk_seconds = 0;
};
// A fresh sensor, args.settle_ms to settle, then one connection window and one bulk window.
Result<CostRun> RunCost(Bench& bench, bool netflow);

}  // namespace nodescope::bench
