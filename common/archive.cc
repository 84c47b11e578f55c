// The tar reader and writer are written by hand: none of the project's
// allowed dependencies (gRPC, protobuf, Duktape, Boost, yaml-cpp,
// GoogleTest, CLI11, nlohmann-json, abseil) reads or writes
// tar, and libarchive would be a new dependency on every agent for what is
// a few hundred lines. We need little of tar: regular files in memory, ustar
// headers, pax "path"/"size" records (and GNU's 'L' long names, read only, as
// GNU tar's default format uses them). Reading is strict, because agents
// read archives that came over the network.
#include "common/archive.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/paths.h"
#include "nlohmann/json.hpp"

namespace barrage {
namespace {

using nlohmann::json;

constexpr size_t kBlock = 512;
constexpr std::string_view kMetadataName = "metadata.json";
constexpr std::string_view kModulesPrefix = "modules/";
constexpr std::string_view kLinesPrefix = "lines/";
constexpr std::string_view kFilesPrefix = "files/";
constexpr std::string_view kRemotePrefix = "https/";
constexpr std::string_view kRemoteScheme = "https://";
constexpr std::string_view kFormatName = "barrage-archive";
// ustar's size field holds 11 octal digits.
constexpr uint64_t kMaxOctalSize = (uint64_t{1} << 33) - 1;

// Header field offsets and widths (POSIX.1-1988 ustar).
struct Field {
  size_t offset;
  size_t width;
};
constexpr Field kName{0, 100};
constexpr Field kMode{100, 8};
constexpr Field kUid{108, 8};
constexpr Field kGid{116, 8};
constexpr Field kSize{124, 12};
constexpr Field kMtime{136, 12};
constexpr Field kChecksum{148, 8};
constexpr size_t kTypeflag = 156;
constexpr Field kMagic{257, 6};
constexpr Field kVersion{263, 2};
constexpr Field kDevMajor{329, 8};
constexpr Field kDevMinor{337, 8};
constexpr Field kPrefix{345, 155};

// Debian's abseil has its own string_view, which std::string_view does not
// convert to.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

size_t PaddedSize(uint64_t size) { return static_cast<size_t>((size + kBlock - 1) / kBlock * kBlock); }

// A path below "modules/" or "files/": non-empty components, none "." or "..".
bool IsSafeRelativePath(std::string_view path) {
  if (path.empty()) return false;
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    const std::string_view part =
        path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

// ---------------------------------------------------------------- writing

void PutString(char* block, Field f, std::string_view s) {
  // An empty view may have a null data(), which memcpy must not get (UBSan).
  if (!s.empty()) std::memcpy(block + f.offset, s.data(), std::min(s.size(), f.width));
}

// Zero-padded octal, width - 1 digits and a NUL, as GNU tar writes them.
void PutOctal(char* block, Field f, uint64_t value) {
  for (size_t i = f.width - 1; i-- > 0;) {
    block[f.offset + i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
  block[f.offset + f.width - 1] = '\0';
}

unsigned HeaderSum(const char* block) {
  unsigned sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    const bool in_checksum = i >= kChecksum.offset && i < kChecksum.offset + kChecksum.width;
    sum += in_checksum ? unsigned{' '} : static_cast<unsigned char>(block[i]);
  }
  return sum;
}

// Splits name into ustar's prefix (<= 155) and name (<= 100) fields at a
// slash. false if it cannot be split so.
bool SplitUstarName(std::string_view path, std::string_view* prefix, std::string_view* name) {
  if (path.size() <= kName.width) {
    *prefix = {};
    *name = path;
    return true;
  }
  // The shortest prefix whose remainder fits in the name field.
  for (size_t slash = path.find('/'); slash != std::string_view::npos && slash <= kPrefix.width;
       slash = path.find('/', slash + 1)) {
    const size_t rest = path.size() - slash - 1;
    if (rest == 0) return false;
    if (rest <= kName.width) {
      *prefix = path.substr(0, slash);
      *name = path.substr(slash + 1);
      return true;
    }
  }
  return false;
}

void AppendHeader(std::string& out, std::string_view prefix, std::string_view name, uint64_t size,
                  char typeflag) {
  char block[kBlock] = {};
  PutString(block, kName, name);
  PutOctal(block, kMode, 0644);
  PutOctal(block, kUid, 0);
  PutOctal(block, kGid, 0);
  PutOctal(block, kSize, size);
  PutOctal(block, kMtime, 0);
  block[kTypeflag] = typeflag;
  PutString(block, kMagic, std::string_view("ustar\0", 6));
  PutString(block, kVersion, "00");
  PutOctal(block, kDevMajor, 0);
  PutOctal(block, kDevMinor, 0);
  PutString(block, kPrefix, prefix);
  // Six octal digits, NUL, space: the classic layout every tar reads.
  const unsigned sum = HeaderSum(block);
  PutOctal(block, Field{kChecksum.offset, 7}, sum);
  block[kChecksum.offset + 7] = ' ';
  out.append(block, kBlock);
}

void AppendData(std::string& out, std::string_view data) {
  out.append(data.data(), data.size());
  out.append(PaddedSize(data.size()) - data.size(), '\0');
}

// "<length> <key>=<value>\n", where length counts the whole record, itself included.
std::string PaxRecord(std::string_view key, std::string_view value) {
  const size_t rest = 1 + key.size() + 1 + value.size() + 1;  // ' ', '=', '\n'
  size_t length = rest + 1;
  while (std::to_string(length).size() + rest != length) length = std::to_string(length).size() + rest;
  return absl::StrCat(length, " ", Sv(key), "=", Sv(value), "\n");
}

void AppendEntry(std::string& out, const std::string& path, std::string_view data) {
  std::string_view prefix;
  std::string_view name;
  const bool long_path = !SplitUstarName(path, &prefix, &name);
  const bool large = data.size() > kMaxOctalSize;
  if (long_path || large) {
    std::string records;
    if (long_path) records += PaxRecord("path", path);
    if (large) records += PaxRecord("size", std::to_string(data.size()));
    // A fixed name (GNU's is "<dir>/PaxHeaders.<pid>/<file>") keeps the output deterministic.
    AppendHeader(out, "", "././@PaxHeader", records.size(), 'x');
    AppendData(out, records);
    if (long_path) {
      // Readers without pax support see the path cut short; ours and GNU tar use "path".
      prefix = {};
      name = std::string_view(path).substr(0, kName.width);
    }
  }
  AppendHeader(out, prefix, name, large ? 0 : data.size(), '0');
  AppendData(out, data);
}

absl::Status CheckPath(const std::string& path, const char* what, bool remote_allowed) {
  if (IsCleanAbsolutePath(path) || (remote_allowed && IsRemoteKey(path))) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " path \"", absl::CHexEscape(path), "\" is not ",
                                                 remote_allowed ? "an https URL or " : "",
                                                 "absolute and clean"));
}

absl::StatusOr<std::string> MetadataJson(const Archive& archive, int version) {
  json options = json::parse(archive.options_json, nullptr, /*allow_exceptions=*/false);
  if (!options.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("options must be a JSON object, got: ", archive.options_json));
  }
  json meta = json::object();  // keys come out sorted: deterministic
  meta["format"] = std::string(kFormatName);
  meta["formatVersion"] = version;
  meta["main"] = archive.main_path;
  meta["options"] = std::move(options);
  meta["env"] = archive.env;
  meta["barrageVersion"] = archive.barrage_version;
  // Indented, as people read it with `tar -xOf test.tar metadata.json`.
  // Strings that are not UTF-8 get U+FFFD rather than an exception.
  return meta.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

// ---------------------------------------------------------------- reading

absl::Status Error(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

std::string Quote(std::string_view s) { return absl::StrCat("\"", Sv(s), "\""); }

// A NUL-terminated field, or all of it when it fills its width.
std::string_view GetString(std::string_view block, Field f) {
  std::string_view s = block.substr(f.offset, f.width);
  return s.substr(0, s.find('\0'));
}

// Octal, optionally space-padded on the left and NUL/space-terminated; or
// GNU's base-256 (first byte 0x80) for values octal cannot hold.
std::optional<uint64_t> GetNumber(std::string_view block, Field f) {
  std::string_view s = block.substr(f.offset, f.width);
  const auto first = static_cast<unsigned char>(s[0]);
  if (first & 0x80) {
    if (first & 0x40) return std::nullopt;  // negative
    uint64_t value = first & 0x3f;
    for (size_t i = 1; i < s.size(); ++i) {
      if (value >> 55) return std::nullopt;  // would overflow 63 bits
      value = (value << 8) | static_cast<unsigned char>(s[i]);
    }
    return value;
  }
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  uint64_t value = 0;
  size_t digits = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '7'; ++i, ++digits) {
    if (value >> 60) return std::nullopt;
    value = value * 8 + static_cast<uint64_t>(s[i] - '0');
  }
  if (digits == 0) return std::nullopt;
  for (; i < s.size(); ++i) {
    if (s[i] != ' ' && s[i] != '\0') return std::nullopt;
  }
  return value;
}

bool HasPrefix(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool AllZero(std::string_view s) { return s.find_first_not_of('\0') == std::string_view::npos; }

const char* TypeName(char typeflag) {
  switch (typeflag) {
    case '1': return "a hard link";
    case '2': return "a symbolic link";
    case '3': return "a character device";
    case '4': return "a block device";
    case '6': return "a FIFO";
    case 'K': return "a GNU long link name";
    case 'S': return "a GNU sparse file";
    default: return nullptr;
  }
}

// The "path" and "size" records of a pax extended header; other keys (times,
// owners, charset) mean nothing to an archive held in memory.
struct PaxOverrides {
  std::optional<std::string> path;
  std::optional<uint64_t> size;
};

bool ParsePax(std::string_view data, PaxOverrides& out) {
  while (!data.empty()) {
    const size_t space = data.find(' ');
    if (space == std::string_view::npos || space == 0 || space > 20) return false;
    uint64_t length = 0;
    for (size_t i = 0; i < space; ++i) {
      if (data[i] < '0' || data[i] > '9') return false;
      length = length * 10 + static_cast<uint64_t>(data[i] - '0');
    }
    if (length <= space + 1 || length > data.size() || data[length - 1] != '\n') return false;
    const std::string_view record = data.substr(space + 1, length - space - 2);
    const size_t eq = record.find('=');
    if (eq == std::string_view::npos || eq == 0) return false;
    const std::string_view key = record.substr(0, eq);
    const std::string_view value = record.substr(eq + 1);
    if (key == "path") {
      out.path = std::string(value);
    } else if (key == "size") {
      if (value.empty() || value.size() > 19) return false;
      uint64_t size = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return false;
        size = size * 10 + static_cast<uint64_t>(c - '0');
      }
      out.size = size;
    }
    data.remove_prefix(length);
  }
  return true;
}

// GNU tar run on "." names entries "./metadata.json", "./modules/...".
std::string_view StripDotSlash(std::string_view name) {
  while (name.size() >= 2 && name[0] == '.' && name[1] == '/') name.remove_prefix(2);
  return name;
}

std::string UnknownEntry(std::string_view name) {
  return absl::StrCat("unknown entry ", Quote(name),
                      " (a barrage archive holds metadata.json, modules/..., https/..., lines/... and files/...)");
}

absl::Status ReadMetadata(const std::string& text, const std::string& where, Archive& archive) {
  json meta;
  try {
    meta = json::parse(text);
  } catch (const json::exception& e) {
    return Error(where, absl::StrCat("metadata.json is not valid JSON: ", e.what()));
  }
  if (!meta.is_object()) return Error(where, "metadata.json: expected a JSON object");
  const auto format = meta.find("format");
  if (format == meta.end() || !format->is_string() || format->get<std::string>() != kFormatName) {
    return Error(where, absl::StrCat("not a barrage archive (metadata.json has no \"format\": \"",
                                     Sv(kFormatName), "\")"));
  }
  const auto version = meta.find("formatVersion");
  if (version == meta.end() || !version->is_number_integer() || version->get<int64_t>() < 1) {
    return Error(where, "metadata.json: \"formatVersion\" must be a positive integer");
  }
  if (const auto barrage = meta.find("barrageVersion"); barrage != meta.end()) {
    if (!barrage->is_string()) return Error(where, "metadata.json: \"barrageVersion\" must be a string");
    archive.barrage_version = barrage->get<std::string>();
  }
  if (version->get<int64_t>() > kArchiveFormatVersion) {
    return Error(where, absl::StrCat("archive format version ", version->get<int64_t>(),
                                     " (made by barrage ", archive.barrage_version,
                                     ") is newer than this barrage reads (",
                                     kArchiveFormatVersion, ")"));
  }
  const auto main = meta.find("main");
  if (main == meta.end() || !main->is_string() || main->get<std::string>().empty()) {
    return Error(where, "metadata.json: \"main\" must be a non-empty string");
  }
  archive.main_path = main->get<std::string>();
  if (const auto options = meta.find("options"); options != meta.end()) {
    if (!options->is_object()) return Error(where, "metadata.json: \"options\" must be an object");
    archive.options_json = options->dump();
  }
  if (const auto env = meta.find("env"); env != meta.end()) {
    if (!env->is_object()) return Error(where, "metadata.json: \"env\" must be an object");
    for (const auto& [key, value] : env->items()) {
      if (!value.is_string()) {
        return Error(where, absl::StrCat("metadata.json: \"env.", key, "\" must be a string"));
      }
      archive.env[key] = value.get<std::string>();
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> WriteArchive(const Archive& archive) {
  if (absl::Status st = CheckPath(archive.main_path, "main", false); !st.ok()) return st;
  bool remote = false;
  for (const auto& [path, source] : archive.modules) {
    if (absl::Status st = CheckPath(path, "module", true); !st.ok()) return st;
    remote = remote || path[0] != '/';
  }
  for (const auto& [path, contents] : archive.files) {
    if (absl::Status st = CheckPath(path, "file", false); !st.ok()) return st;
  }
  bool lines = false;
  for (const auto& [path, map] : archive.line_maps) {
    if (archive.modules.count(path) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("line map of no module: \"", path, "\""));
    }
    lines = lines || path[0] == '/';
  }
  // Version 1 readers know neither remote modules nor line maps: only
  // archives that hold some need the newer version.
  absl::StatusOr<std::string> metadata = MetadataJson(archive, remote || lines ? 2 : 1);
  if (!metadata.ok()) return metadata.status();

  std::string out;
  AppendEntry(out, std::string(kMetadataName), *metadata);
  // std::map iterates in path order; the "/" dropped is common to all.
  for (const auto& [path, source] : archive.modules) {
    if (path[0] == '/') AppendEntry(out, absl::StrCat(Sv(kModulesPrefix), path.substr(1)), source);
  }
  for (const auto& [url, source] : archive.modules) {
    if (url[0] != '/') AppendEntry(out, absl::StrCat(Sv(kRemotePrefix), url.substr(kRemoteScheme.size())), source);
  }
  for (const auto& [path, lines] : archive.line_maps) {
    if (path[0] != '/') continue;  // a remote module's: not kept (archive.h)
    AppendEntry(out, absl::StrCat(Sv(kLinesPrefix), path.substr(1)), lines.Encode());
  }
  for (const auto& [path, contents] : archive.files) {
    AppendEntry(out, absl::StrCat(Sv(kFilesPrefix), path.substr(1)), contents);
  }
  out.append(2 * kBlock, '\0');  // end-of-archive marker
  return out;
}

absl::StatusOr<Archive> ReadArchive(std::string_view bytes, const std::string& where,
                                    size_t max_bytes) {
  if (bytes.size() > max_bytes) {
    return Error(where, absl::StrCat("archive is ", bytes.size(), " bytes, over the limit of ",
                                     max_bytes));
  }
  Archive archive;
  std::optional<std::string> metadata;
  PaxOverrides pending;       // from 'x' or 'L' headers, for the next entry
  bool have_pending = false;
  std::string last_name;      // for "truncated after entry ..."
  size_t pos = 0;
  while (true) {
    const size_t left = bytes.size() - pos;
    if (left < kBlock) {
      if (pos == 0) {
        return Error(where, left == 0 ? "not a tar file (empty)"
                                      : "not a tar file (shorter than one header)");
      }
      return Error(where, absl::StrCat("truncated after entry ", Quote(last_name),
                                       " (no end-of-archive marker)"));
    }
    const std::string_view block = bytes.substr(pos, kBlock);

    if (AllZero(block)) {
      // The end: two zero blocks, then nothing but GNU tar's zero padding
      // to its 10240-byte records.
      if (pos == 0) break;  // an empty tar: reported below as no metadata.json
      if (left < 2 * kBlock || !AllZero(bytes.substr(pos + kBlock, kBlock))) {
        if (left >= 2 * kBlock) {
          return Error(where, absl::StrCat("unexpected data after the end-of-archive marker at offset ",
                                           pos + kBlock));
        }
        return Error(where, absl::StrCat("truncated after entry ", Quote(last_name),
                                         " (no end-of-archive marker)"));
      }
      if (have_pending) {
        return Error(where, absl::StrCat("extended header ", Quote(last_name),
                                         " is not followed by an entry"));
      }
      const size_t garbage = bytes.find_first_not_of('\0', pos + 2 * kBlock);
      if (garbage != std::string_view::npos) {
        return Error(where, absl::StrCat("unexpected data after the end-of-archive marker at offset ",
                                         garbage));
      }
      break;
    }

    // "ustar\0" + "00" (POSIX) or "ustar  \0" (GNU, whose header has no prefix field).
    const std::string_view magic = block.substr(kMagic.offset, kMagic.width);
    const bool posix = magic == std::string_view("ustar\0", 6);
    const bool gnu = magic == "ustar " && block[kVersion.offset] == ' ';
    if (!posix && !gnu) {
      if (pos == 0) return Error(where, "not a tar file (no ustar header at offset 0)");
      return Error(where, absl::StrCat("corrupt header at offset ", pos, " (no ustar magic)"));
    }
    // Stored as octal; old tars summed signed chars, so accept either sum.
    const std::optional<uint64_t> stored = GetNumber(block, kChecksum);
    const unsigned unsigned_sum = HeaderSum(block.data());
    int signed_sum = 0;
    for (size_t i = 0; i < kBlock; ++i) {
      const bool in_checksum = i >= kChecksum.offset && i < kChecksum.offset + kChecksum.width;
      signed_sum += in_checksum ? int{' '} : static_cast<signed char>(block[i]);
    }
    if (!stored || (*stored != unsigned_sum && static_cast<int64_t>(*stored) != signed_sum)) {
      return Error(where, absl::StrCat("corrupt header at offset ", pos, " (checksum mismatch)"));
    }
    const std::optional<uint64_t> header_size = GetNumber(block, kSize);
    if (!header_size) {
      return Error(where, absl::StrCat("corrupt header at offset ", pos, " (bad size field)"));
    }
    const char typeflag = block[kTypeflag];
    const bool is_extension = typeflag == 'x' || typeflag == 'g' || typeflag == 'L';

    std::string name;
    if (!is_extension && pending.path) {
      name = *pending.path;
    } else {
      const std::string_view prefix = posix ? GetString(block, kPrefix) : std::string_view();
      const std::string_view short_name = GetString(block, kName);
      name = prefix.empty() ? std::string(short_name) : absl::StrCat(Sv(prefix), "/", Sv(short_name));
    }
    const uint64_t size = !is_extension && pending.size ? *pending.size : *header_size;
    last_name = name;
    const size_t data_start = pos + kBlock;
    if (size > bytes.size() - data_start || PaddedSize(size) > bytes.size() - data_start) {
      return Error(where, absl::StrCat("truncated at entry ", Quote(name)));
    }
    const std::string_view data = bytes.substr(data_start, static_cast<size_t>(size));
    pos = data_start + PaddedSize(size);

    if (typeflag == 'x') {
      if (!ParsePax(data, pending)) {
        return Error(where, absl::StrCat("malformed pax header at offset ", data_start - kBlock));
      }
      have_pending = true;
      continue;
    }
    if (typeflag == 'g') continue;  // global defaults: nothing we use
    if (typeflag == 'L') {
      pending.path = std::string(data.substr(0, data.find('\0')));
      have_pending = true;
      continue;
    }
    pending = PaxOverrides();
    have_pending = false;

    const std::string_view relative = StripDotSlash(name);
    if (typeflag == '5') {
      // Directories carry nothing: the paths of the files below them do.
      std::string_view dir = relative;
      while (!dir.empty() && dir.back() == '/') dir.remove_suffix(1);
      if (dir.empty() || dir == "." || dir == "modules" || dir == "lines" || dir == "files" || dir == "https") {
        continue;
      }
      std::string_view prefix;
      for (std::string_view p : {kModulesPrefix, kLinesPrefix, kFilesPrefix, kRemotePrefix}) {
        if (HasPrefix(dir, p)) prefix = p;
      }
      if (prefix.empty()) return Error(where, UnknownEntry(name));
      if (!IsSafeRelativePath(dir.substr(prefix.size()))) {
        return Error(where, absl::StrCat("entry ", Quote(name),
                                         " has an empty, \".\" or \"..\" path component"));
      }
      continue;
    }
    if (typeflag != '0' && typeflag != '\0' && typeflag != '7') {
      const char* type = TypeName(typeflag);
      return Error(where, absl::StrCat("entry ", Quote(name), " is ",
                                       type ? type : absl::StrCat("of type '", std::string(1, typeflag), "'"),
                                       "; an archive holds only regular files and directories"));
    }

    if (relative == kMetadataName) {
      if (metadata) return Error(where, absl::StrCat("duplicate entry ", Quote(name)));
      metadata = std::string(data);
      continue;
    }
    if (HasPrefix(relative, kLinesPrefix)) {
      const std::string_view path = relative.substr(kLinesPrefix.size());
      if (!IsSafeRelativePath(path)) {
        return Error(where, absl::StrCat("entry ", Quote(name),
                                         " has an empty, \".\" or \"..\" path component"));
      }
      absl::StatusOr<LineMap> lines = LineMap::Decode(Sv(data));
      if (!lines.ok()) return Error(where, absl::StrCat("entry ", Quote(name), ": ", lines.status().message()));
      if (!archive.line_maps.emplace(absl::StrCat("/", Sv(path)), *std::move(lines)).second) {
        return Error(where, absl::StrCat("duplicate entry ", Quote(name)));
      }
      continue;
    }
    std::map<std::string, std::string>* target = nullptr;
    std::string_view path;
    if (HasPrefix(relative, kModulesPrefix)) {
      target = &archive.modules;
      path = relative.substr(kModulesPrefix.size());
    } else if (HasPrefix(relative, kFilesPrefix)) {
      target = &archive.files;
      path = relative.substr(kFilesPrefix.size());
    } else if (HasPrefix(relative, kRemotePrefix)) {
      std::string url = absl::StrCat(Sv(kRemoteScheme), Sv(relative.substr(kRemotePrefix.size())));
      if (!IsRemoteKey(url)) {
        return Error(where, absl::StrCat("entry ", Quote(name), " does not name an https URL with a clean path"));
      }
      if (!archive.modules.emplace(std::move(url), std::string(data)).second) {
        return Error(where, absl::StrCat("duplicate entry ", Quote(name)));
      }
      continue;
    } else {
      return Error(where, UnknownEntry(name));
    }
    if (!IsSafeRelativePath(path)) {
      return Error(where, absl::StrCat("entry ", Quote(name),
                                       " has an empty, \".\" or \"..\" path component"));
    }
    if (!target->emplace(absl::StrCat("/", Sv(path)), std::string(data))
             .second) {
      return Error(where, absl::StrCat("duplicate entry ", Quote(name)));
    }
  }

  if (!metadata) return Error(where, "not a barrage archive (no metadata.json)");
  if (absl::Status status = ReadMetadata(*metadata, where, archive); !status.ok()) return status;
  if (!IsCleanAbsolutePath(archive.main_path)) {
    return Error(where, absl::StrCat("main script ", Quote(archive.main_path), " is not an absolute, clean path"));
  }
  if (archive.modules.count(archive.main_path) == 0) {
    return Error(where, absl::StrCat("main script ", Quote(archive.main_path),
                                     " is not among the archive's modules"));
  }
  for (const auto& [path, lines] : archive.line_maps) {
    if (archive.modules.count(path) == 0) {
      return Error(where, absl::StrCat("entry ", Quote(absl::StrCat(Sv(kLinesPrefix), path.substr(1))),
                                       " is the line map of no module"));
    }
  }
  return archive;
}

}  // namespace barrage
