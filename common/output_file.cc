#include "common/output_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace barrage {
namespace {

constexpr size_t kFlushAt = 1 << 16;

std::string Reason(int err) { return std::strerror(err); }

}  // namespace

absl::StatusOr<std::unique_ptr<OutputFile>> OutputFile::Create(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InvalidArgumentError(absl::StrCat(path, ": ", Reason(errno)));
  return std::unique_ptr<OutputFile>(new OutputFile(path, fd));
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status OutputFile::Append(std::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": already closed"));
  buffer_.append(data.data(), data.size());
  if (buffer_.size() >= kFlushAt) return Flush();
  return absl::OkStatus();
}

absl::Status OutputFile::Flush() {
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      buffer_.erase(0, done);
      return absl::DataLossError(absl::StrCat(path_, ": ", Reason(err)));
    }
    done += static_cast<size_t>(n);
  }
  buffer_.clear();
  return absl::OkStatus();
}

absl::Status OutputFile::Close() {
  if (fd_ < 0) return absl::OkStatus();
  absl::Status st = Flush();
  // close() can report a deferred write error (NFS, some FUSE file systems).
  if (::close(fd_) != 0 && st.ok()) st = absl::DataLossError(absl::StrCat(path_, ": ", Reason(errno)));
  fd_ = -1;
  return st;
}

absl::Status WriteWholeFile(const std::string& path, std::string_view content) {
  absl::StatusOr<std::unique_ptr<OutputFile>> file = OutputFile::Create(path);
  if (!file.ok()) return file.status();
  absl::Status st = (*file)->Append(content);
  absl::Status closed = (*file)->Close();
  return st.ok() ? closed : st;
}

}  // namespace barrage
