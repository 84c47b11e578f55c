// Files Barrage writes results to (--out, --summary-export, handleSummary's
// outputs): every write and the close are checked and a failure names the
// file and the system's reason ("summary.json: No space left on device").
// Why not std::ofstream: it buffers, so a full disk showed up only when the
// stream was destroyed, unchecked, and its errors carry no errno text.
// Not thread-safe: one owner.
#ifndef BARRAGE_COMMON_OUTPUT_FILE_H_
#define BARRAGE_COMMON_OUTPUT_FILE_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace barrage {

class OutputFile {
 public:
  // Creates or truncates path. Errors are kInvalidArgument
  // "<path>: <reason>" (the directory is missing, permission denied).
  static absl::StatusOr<std::unique_ptr<OutputFile>> Create(const std::string& path);
  ~OutputFile();  // closes without checking: call Close() to know
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Buffered; large buffers are written at once.
  absl::Status Append(std::string_view data);
  // Everything appended so far reaches the kernel. kDataLoss
  // "<path>: <reason>" when it cannot (ENOSPC, EIO, EFBIG).
  absl::Status Flush();
  // Flush, then close; the first failure is returned. Later calls are no-ops.
  absl::Status Close();
  const std::string& path() const { return path_; }

 private:
  OutputFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
  std::string buffer_;
};

// Create, Append, Close in one step: the whole file or an error naming it.
absl::Status WriteWholeFile(const std::string& path, std::string_view content);

}  // namespace barrage

#endif  // BARRAGE_COMMON_OUTPUT_FILE_H_
