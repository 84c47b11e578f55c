// `--out json=FILE` and `--out csv=FILE` (spec §4.6): every sample as it
// was measured, in k6's layouts, as k6's output/json and output/csv write
// them. Agents forward their samples (control.proto's RawSamples) only when
// an output asks for them; the coordinator hands each message to
// SampleOutputs::Accept, which queues it; a writer thread formats and
// writes, and flushes each file every 200 ms (json; k6's flushPeriod) or
// saveInterval (csv, 1 s by default). A name ending in .gz is gzipped.
//
// Bounded: the queue holds at most max_queued_bytes of messages. Past it,
// messages are dropped and counted, as are the samples agents could not
// keep (RawSamples.dropped): never silently. The first drop is logged at
// once, and Close logs the total, names the files that lack them, and
// dropped() tells the CLI.
//
// The per-interval aggregates that --out wrote before are a different
// feature (the summary, the export, Prometheus); they are not written here.
#ifndef BARRAGE_CONTROLLER_OUTPUTS_H_
#define BARRAGE_CONTROLLER_OUTPUTS_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "barrage/v1/control.pb.h"
#include "common/metrics/metric.h"
#include "common/options.h"

namespace barrage::controller {

// What the outputs need from the test's options.
struct OutputSettings {
  // On each metric's Metric line (json), as k6 writes them.
  std::map<std::string, std::vector<ThresholdSpec>> thresholds;
  // The enabled system tags: csv's columns; "vu"/"iter" are metadata.
  std::vector<std::string> system_tags;
  // K6_CSV_FILENAME, K6_CSV_TIME_FORMAT, K6_CSV_SAVE_INTERVAL.
  std::map<std::string, std::string> env;
  absl::TimeZone time_zone = absl::LocalTimeZone();  // k6 writes local times
};

// k6's JSON text of one value, as Go's encoding/json writes it: the
// shortest form, in exponent form below 1e-6 and from 1e21 up.
std::string GoJsonNumber(double v);
void AppendGoJsonNumber(std::string& out, double v);
// A JSON string as Go's encoding/json writes it without HTML escaping
// (\u2028, \u2029 and invalid UTF-8 as \ufffd, as Go does).
void AppendGoJsonString(std::string& out, std::string_view s);
// time.RFC3339Nano: fraction without trailing zeros, "Z" for UTC.
std::string GoRfc3339Nano(int64_t unix_ns, absl::TimeZone tz);

// One file: json or csv, optionally gzipped. Not thread-safe (the writer
// thread owns it once SampleOutputs started).
class Output {
 public:
  virtual ~Output();
  // spec: "json=FILE", "csv=FILE" or "csv=fileName=FILE,timeFormat=unix,
  // saveInterval=1s" (k6's keys). The file is created now; a bad spec or
  // an unwritable file is kInvalidArgument naming it.
  static absl::StatusOr<std::unique_ptr<Output>> Open(const std::string& spec, const OutputSettings& settings);

  // Formats one checked message's samples (SampleOutputs::Check).
  virtual void Add(const v1::RawSamples& batch) = 0;
  // Writes what was added when the flush period has passed (or now, with
  // force). kDataLoss naming the file when the disk refuses: the output
  // then stops, and says so once.
  absl::Status Flush(absl::Time now, bool force);
  // Flushes, finishes the gzip stream, closes.
  absl::Status Close();
  const std::string& path() const;
  class File;  // outputs.cc

 protected:
  Output(std::unique_ptr<File> file, absl::Duration flush_every);
  std::string pending_;  // formatted, not yet written
  std::unique_ptr<File> file_;

 private:
  absl::Duration flush_every_;
  absl::Time last_flush_ = absl::InfinitePast();
  bool failed_ = false;
};

class SampleOutputs {
 public:
  static constexpr size_t kDefaultMaxQueuedBytes = 256 << 20;
  // Opens every spec (none: empty(), and Accept is never needed).
  static absl::StatusOr<std::unique_ptr<SampleOutputs>> Open(const std::vector<std::string>& specs,
                                                             const OutputSettings& settings,
                                                             size_t max_queued_bytes = kDefaultMaxQueuedBytes);
  ~SampleOutputs();  // Close() if not done
  bool empty() const { return outputs_.empty(); }

  // An agent's message: checked (indices, names, tag sets; an error is
  // the agent's protocol violation, kInvalidArgument), then queued, or
  // dropped and counted when the queue is full. Any thread.
  absl::Status Accept(const v1::RawSamples& batch);
  // The vus and vus_max gauges the controller samples itself.
  void AddVus(const metrics::TagSet& tags, int64_t vus, int64_t vus_max, absl::Time at);
  // Writes everything queued, finishes and closes the files; logs what was
  // dropped. Once; later Accepts are counted as dropped.
  void Close();
  // Samples that the files lack: dropped by agents or by the queue.
  uint64_t dropped() const { return dropped_agents_.load() + dropped_queue_.load(); }

  // Checks an agent's message without queueing it.
  static absl::Status Check(const v1::RawSamples& batch);

 private:
  SampleOutputs(size_t max_queued_bytes) : max_queued_bytes_(max_queued_bytes) {}
  void Enqueue(v1::RawSamples batch);
  void WriterLoop();
  void NoteDrop();

  const size_t max_queued_bytes_;
  std::vector<std::unique_ptr<Output>> outputs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::RawSamples> queue_;  // guarded by mu_
  size_t queued_bytes_ = 0;           // guarded by mu_
  bool closing_ = false;              // guarded by mu_
  bool closed_ = false;               // guarded by mu_
  std::thread writer_;
  std::atomic<uint64_t> dropped_agents_{0};
  std::atomic<uint64_t> dropped_queue_{0};
  std::atomic<bool> drop_logged_{false};
};

}  // namespace barrage::controller

#endif  // BARRAGE_CONTROLLER_OUTPUTS_H_
