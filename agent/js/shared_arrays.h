// The arrays of k6/data's SharedArray (k6's internal/js/modules/k6/data):
// each built once per process and name, by the first VU that asks, and
// read by every VU without a copy of its own. An element is kept as its
// JSON text in one immutable block per array, and decoded (and frozen) each
// time a VU reads it, as k6 does: a VU's heap holds only the elements it is
// using at the moment.
//
// Threads: a store is shared by every VU of a run, on any worker thread.
// GetOrBuild may be called concurrently; the builder for a name runs once
// at a time, under that name's lock (other names are not blocked).
#ifndef BARRAGE_AGENT_JS_SHARED_ARRAYS_H_
#define BARRAGE_AGENT_JS_SHARED_ARRAYS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace barrage::agent::js {

// One shared array: its elements' JSON texts back to back. Immutable.
class SharedArrayData {
 public:
  // Appends while building (before the array is published).
  void Add(std::string_view json) {
    blob_.append(json.data(), json.size());
    ends_.push_back(blob_.size());
  }
  void ShrinkToFit() {
    blob_.shrink_to_fit();
    ends_.shrink_to_fit();
  }
  size_t size() const { return ends_.size(); }
  // Element i's JSON text; "" stands for undefined (JSON.stringify gave nothing).
  std::string_view at(size_t i) const {
    const size_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(blob_).substr(begin, ends_[i] - begin);
  }
  size_t bytes() const { return blob_.capacity() + ends_.capacity() * sizeof(ends_[0]); }

 private:
  std::string blob_;
  std::vector<size_t> ends_;
};

class SharedArrayStore {
 public:
  using Builder = std::function<absl::StatusOr<std::shared_ptr<const SharedArrayData>>()>;

  // The array called name: the stored one, or the builder's, stored if it
  // succeeds (a failed build stores nothing: the next caller builds again,
  // as in k6).
  absl::StatusOr<std::shared_ptr<const SharedArrayData>> GetOrBuild(const std::string& name,
                                                                   const Builder& build) {
    std::shared_ptr<Entry> entry;
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::shared_ptr<Entry>& slot = entries_[name];
      if (slot == nullptr) slot = std::make_shared<Entry>();
      entry = slot;
    }
    std::lock_guard<std::mutex> lock(entry->mu);
    if (entry->data != nullptr) return entry->data;
    absl::StatusOr<std::shared_ptr<const SharedArrayData>> built = build();
    if (built.ok()) entry->data = *built;
    return built;
  }

 private:
  struct Entry {
    std::mutex mu;
    std::shared_ptr<const SharedArrayData> data;  // guarded by mu
  };
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // guarded by mu_
};

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_SHARED_ARRAYS_H_
