#include "common/archive.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/testing/child_process.h"
#include "tests/testing/paths.h"
#include "tests/testing/status_matchers.h"

namespace barrage {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testutil::IsOk;
using testutil::StatusIs;
using namespace std::chrono_literals;

constexpr size_t kNoLimit = size_t{1} << 30;
constexpr char kTar[] = "/usr/bin/tar";

// ------------------------------------------------------------ fixtures

std::string Binary(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (char& c : s) {
    seed = seed * 1664525 + 1013904223;  // any bytes, NULs included
    c = static_cast<char>(seed >> 24);
  }
  return s;
}

// A single path component of n bytes.
std::string Component(size_t n, char c) { return std::string(n, c); }

// Too long for ustar's 100 + 155 even when split: needs a pax "path" record.
const std::string kDeepPath = "/home/u/" + Component(60, 'a') + "/" + Component(60, 'b') + "/" +
                              Component(60, 'c') + "/" + Component(60, 'd') + "/deep.js";
// Over 100 bytes but splittable at a slash into ustar's prefix and name fields.
const std::string kSplitPath = "/home/u/" + Component(80, 'p') + "/" + Component(80, 'q') + ".txt";
// One component over 100 bytes: cannot be split, needs pax.
const std::string kLongNamePath = "/home/u/" + Component(120, 'n') + ".bin";
const std::string kUnicodePath = "/home/ü/tëst/скрипт.js";

Archive Sample() {
  Archive a;
  a.main_path = "/home/u/test/script.js";
  a.modules[a.main_path] = "var util = require('./lib/util.js');\nexports.default = function () {};\n";
  a.modules["/home/u/test/lib/util.js"] = "exports.x = 1;\n";
  a.modules[kUnicodePath] = "exports.greeting = \"héllo\";\n";
  a.modules[kDeepPath] = "exports.deep = true;\n";
  a.line_maps[a.main_path] = LineMap({0, 1, 3, 0});
  a.line_maps[kDeepPath] = LineMap({7});
  a.files["/home/u/test/data.bin"] = std::string("\0a\0b\xff\xfe\0", 7);
  a.files["/home/u/test/empty.txt"] = "";
  a.files["/home/u/test/big.bin"] = Binary(70000, 7);
  a.files[kSplitPath] = "split";
  a.files[kLongNamePath] = Binary(513, 11);  // one byte past a block
  a.files["/home/u/test/protos/ünïcode.proto"] = "syntax = \"proto3\";\n";
  a.options_json = R"({"vus": 10, "thresholds": {"grpc_req_duration": ["p(95)<500"]},
                       "tags": {"ünï": "cödé"}})";
  a.env = {{"TARGET", "127.0.0.1:9001"}, {"EMPTY", ""}};
  a.barrage_version = "0.1.0";
  return a;
}

void ExpectSameArchive(const Archive& got, const Archive& want) {
  EXPECT_EQ(got.main_path, want.main_path);
  EXPECT_EQ(got.modules, want.modules);
  EXPECT_EQ(got.line_maps, want.line_maps);
  EXPECT_EQ(got.files, want.files);
  EXPECT_EQ(nlohmann::json::parse(got.options_json), nlohmann::json::parse(want.options_json))
      << got.options_json;
  EXPECT_EQ(got.env, want.env);
  EXPECT_EQ(got.barrage_version, want.barrage_version);
}

// A ustar header made here, apart from archive.cc's writer, for the
// archives WriteArchive never makes (broken ones, other tars' habits).
std::string Header(const std::string& name, uint64_t size, char type = '0',
                   const std::string& prefix = "") {
  std::string h(512, '\0');
  h.replace(0, std::min<size_t>(name.size(), 100), name, 0, 100);
  std::snprintf(&h[100], 8, "%07o", 0644);
  std::snprintf(&h[108], 8, "%07o", 0);
  std::snprintf(&h[116], 8, "%07o", 0);
  std::snprintf(&h[124], 12, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(&h[136], 12, "%011o", 0);
  h[156] = type;
  h.replace(257, 8, std::string("ustar\0" "00", 8));
  h.replace(345, prefix.size(), prefix);
  return h;
}

// Recomputes the checksum after a test changed a header field.
std::string& Seal(std::string& header) {
  header.replace(148, 8, 8, ' ');
  unsigned sum = 0;
  for (size_t i = 0; i < 512; ++i) sum += static_cast<unsigned char>(header[i]);
  char field[8];
  std::snprintf(field, sizeof field, "%06o", sum);
  header.replace(148, 7, field, 7);  // six digits and a NUL, then the space
  return header;
}

std::string Padded(const std::string& data) {
  return data + std::string((512 - data.size() % 512) % 512, '\0');
}

std::string Entry(const std::string& name, const std::string& data, char type = '0') {
  std::string h = Header(name, data.size(), type);
  return Seal(h) + Padded(data);
}

// "<length> <key>=<value>\n", the length counting the whole record.
std::string Pax(const std::string& key, const std::string& value) {
  const std::string body = " " + key + "=" + value + "\n";
  size_t length = body.size() + 1;
  while (std::to_string(length).size() + body.size() != length) ++length;
  return std::to_string(length) + body;
}

std::string End() { return std::string(1024, '\0'); }

std::string Tar(std::initializer_list<std::string> entries) {
  std::string out;
  for (const std::string& e : entries) out += e;
  return out + End();
}

// Under 512 bytes, so in a Tar() that starts with it the next header is at 1024.
std::string Meta(const std::string& main = "/x.js") {
  return R"({"format": "barrage-archive", "formatVersion": 1, "main": ")" + main + "\"}";
}

absl::StatusOr<Archive> Read(const std::string& bytes) { return ReadArchive(bytes, "test.tar", kNoLimit); }

// What a tar reader sees: each header's full name, type and raw fields.
struct HeaderInfo {
  std::string name;
  char type;
  std::string mode, uid, gid, mtime, prefix;
};
std::vector<HeaderInfo> Headers(const std::string& tar) {
  std::vector<HeaderInfo> out;
  for (size_t pos = 0; pos + 512 <= tar.size();) {
    const std::string h = tar.substr(pos, 512);
    if (h == std::string(512, '\0')) break;
    auto field = [&](size_t off, size_t width) {
      std::string s = h.substr(off, width);
      return s.substr(0, s.find('\0'));
    };
    HeaderInfo info{field(0, 100), h[156], field(100, 8), field(108, 8), field(116, 8), field(136, 12),
                    field(345, 155)};
    if (!info.prefix.empty()) info.name = info.prefix + "/" + info.name;
    out.push_back(info);
    const uint64_t size = std::stoull(field(124, 12), nullptr, 8);
    pos += 512 + (size + 511) / 512 * 512;
  }
  return out;
}

void WriteFile(const std::filesystem::path& path, const std::string& contents) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << contents;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool HaveTar() { return access(kTar, X_OK) == 0; }

// WriteArchive's bytes; the archives here are valid, so it must succeed.
std::string Write(const Archive& a) {
  absl::StatusOr<std::string> bytes = WriteArchive(a);
  EXPECT_THAT(bytes, IsOk());
  return bytes.ok() ? *bytes : std::string();
}

// ------------------------------------------------------------ round trip, layout

TEST(ArchiveTest, RoundTripKeepsModulesFilesOptionsAndEnv) {
  const Archive want = Sample();
  absl::StatusOr<Archive> got = Read(Write(want));
  ASSERT_THAT(got, IsOk());
  ExpectSameArchive(*got, want);
}

TEST(ArchiveTest, MinimalArchiveRoundTrips) {
  Archive want;
  want.main_path = "/s.js";
  want.modules["/s.js"] = "";
  absl::StatusOr<Archive> got = Read(Write(want));
  ASSERT_THAT(got, IsOk());
  ExpectSameArchive(*got, want);
  EXPECT_EQ(got->options_json, "{}");
}

TEST(ArchiveTest, SameInputGivesSameBytes) {
  const Archive a = Sample();
  // The same content inserted in another order.
  Archive b;
  for (auto it = a.files.rbegin(); it != a.files.rend(); ++it) b.files.insert(*it);
  for (auto it = a.modules.rbegin(); it != a.modules.rend(); ++it) b.modules.insert(*it);
  for (auto it = a.line_maps.rbegin(); it != a.line_maps.rend(); ++it) b.line_maps.insert(*it);
  b.main_path = a.main_path;
  b.env = {{"EMPTY", ""}, {"TARGET", "127.0.0.1:9001"}};
  b.options_json = R"({"tags":{"ünï":"cödé"},"thresholds":{"grpc_req_duration":["p(95)<500"]},"vus":10})";
  b.barrage_version = a.barrage_version;
  const std::string bytes = Write(a);
  EXPECT_EQ(Write(a), bytes);
  EXPECT_EQ(Write(b), bytes);
  // And through a read: what an agent re-archives is what it got.
  absl::StatusOr<Archive> read = Read(bytes);
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(Write(*read), bytes);
}

TEST(ArchiveTest, EntriesAreSortedWithFixedModeOwnerAndTime) {
  Archive a;
  a.main_path = "/t/main.js";
  a.modules = {{"/t/main.js", "m"}, {"/t/a.js", "a"}};
  a.line_maps = {{"/t/main.js", LineMap({1})}, {"/t/a.js", LineMap({2})}};
  a.files = {{"/t/z.csv", "z"}, {"/t/b.bin", std::string("\0", 1)}};
  const std::vector<HeaderInfo> headers = Headers(Write(a));
  std::vector<std::string> names;
  for (const HeaderInfo& h : headers) {
    names.push_back(h.name);
    EXPECT_EQ(h.type, '0') << h.name;
    EXPECT_EQ(h.mode, "0000644") << h.name;
    EXPECT_EQ(h.uid, "0000000") << h.name;
    EXPECT_EQ(h.gid, "0000000") << h.name;
    EXPECT_EQ(h.mtime, "00000000000") << h.name;
  }
  EXPECT_THAT(names, ElementsAre("metadata.json", "modules/t/a.js", "modules/t/main.js", "lines/t/a.js",
                                 "lines/t/main.js", "files/t/b.bin", "files/t/z.csv"));
}

TEST(ArchiveTest, LongPathsUseUstarPrefixOrPaxHeader) {
  Archive a;
  a.main_path = kDeepPath;
  a.modules[kDeepPath] = "d";
  a.files[kSplitPath] = "s";
  a.files[kLongNamePath] = "l";
  const std::vector<HeaderInfo> headers = Headers(Write(a));
  std::vector<std::string> names;
  for (const HeaderInfo& h : headers) names.push_back(h.type == 'x' ? "<pax>" : h.name);
  // The split path fits ustar's fields; the others are cut short in the
  // header and carried whole by the pax record before them.
  ASSERT_THAT(names, ElementsAre("metadata.json", "<pax>", "modules" + kDeepPath.substr(0, 93),
                                 "<pax>", "files" + kLongNamePath.substr(0, 95),
                                 "files" + kSplitPath));
  EXPECT_EQ(headers[5].prefix, "files/home/u/" + Component(80, 'p'));
}

TEST(ArchiveTest, WriteRefusesPathsItCouldNotReadBack) {
  // Keys come from scripts: an error, never an abort.
  Archive relative;
  relative.main_path = "script.js";
  relative.modules["script.js"] = "";
  EXPECT_THAT(WriteArchive(relative).status().message(),
              HasSubstr("main path \"script.js\" is not absolute and clean"));
  Archive dotdot;
  dotdot.main_path = "/s.js";
  dotdot.modules["/s.js"] = "";
  dotdot.files["/a/../b"] = "";
  EXPECT_THAT(WriteArchive(dotdot).status().message(), HasSubstr("file path \"/a/../b\" is not absolute and clean"));
  Archive slashes = dotdot;
  slashes.files = {{"/a//b", ""}};
  EXPECT_FALSE(WriteArchive(slashes).ok());
  Archive remote_file = dotdot;
  remote_file.files = {{"https://h/x", ""}};
  EXPECT_THAT(WriteArchive(remote_file).status().message(), HasSubstr("file path \"https://h/x\""));
  Archive bad_url = dotdot;
  bad_url.files.clear();
  bad_url.modules["https://h/a/../x.js"] = "";
  EXPECT_THAT(WriteArchive(bad_url).status().message(), HasSubstr("is not an https URL or absolute and clean"));
  Archive nul = dotdot;
  nul.files = {{std::string("/a\0b", 4), ""}};
  EXPECT_THAT(WriteArchive(nul).status().message(), HasSubstr("/a\\x00"));
  Archive options;
  options.main_path = "/s.js";
  options.modules["/s.js"] = "";
  options.options_json = "[1]";
  EXPECT_THAT(WriteArchive(options).status().message(), HasSubstr("options must be a JSON object"));
}

TEST(ArchiveTest, RemoteModulesGoBelowHttpsAndNeedVersion2) {
  Archive a;
  a.main_path = "/t/main.js";
  a.modules = {{"/t/main.js", "m"},
               {"https://jslib.k6.io/k6-utils/1.4.0/index.js", "u"},
               {"https://127.0.0.1:8443/lib/x.js?v=1", "x"}};
  const std::string bytes = Write(a);
  std::vector<std::string> names;
  for (const HeaderInfo& h : Headers(bytes)) names.push_back(h.name);
  EXPECT_THAT(names, ElementsAre("metadata.json", "modules/t/main.js", "https/127.0.0.1:8443/lib/x.js?v=1",
                                 "https/jslib.k6.io/k6-utils/1.4.0/index.js"));
  absl::StatusOr<Archive> got = Read(bytes);
  ASSERT_THAT(got, IsOk());
  ExpectSameArchive(*got, a);
  EXPECT_THAT(bytes, HasSubstr("\"formatVersion\": 2"));
  // Without remote modules, version 1: older readers keep reading them.
  Archive plain = Sample();
  plain.line_maps.clear();
  EXPECT_THAT(Write(plain), HasSubstr("\"formatVersion\": 1"));

  Archive lines;
  lines.main_path = "/s.js";
  lines.modules["/s.js"] = "";
  lines.line_maps["/t.js"] = LineMap({1});
  EXPECT_THAT(WriteArchive(lines).status().message(), HasSubstr("line map of no module: \"/t.js\""));
}

TEST(ArchiveTest, LineMapsAreReadableText) {
  Archive a;
  a.main_path = "/t/main.js";
  a.modules["/t/main.js"] = "m";
  a.line_maps["/t/main.js"] = LineMap({0, 0, 3, 3, 12});
  const std::string bytes = Write(a);
  EXPECT_THAT(bytes, HasSubstr("\"formatVersion\": 2"));
  EXPECT_NE(bytes.find("0 0 3 3 12"), std::string::npos);
  EXPECT_EQ(Headers(bytes)[2].name, "lines/t/main.js");
}

TEST(ArchiveTest, FormatOneArchivesWithoutLineMapsStillLoad) {
  // What barrage wrote before line maps (formatVersion 1): its modules were
  // transformed with Babel's retainLines and carry no maps.
  absl::StatusOr<Archive> got = Read(Tar({Entry("metadata.json", Meta("/x.js")), Entry("modules/x.js", "x")}));
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->modules.at("/x.js"), "x");
  EXPECT_TRUE(got->line_maps.empty());
}

// ------------------------------------------------------------ GNU tar

TEST(ArchiveGnuTarTest, ListsAndExtractsOurArchive) {
  if (!HaveTar()) GTEST_SKIP() << kTar << " is missing; cannot check that GNU tar reads our archives";
  const Archive a = Sample();
  const std::string dir = testutil::TempDir();
  const std::string tar_path = dir + "/test.tar";
  WriteFile(tar_path, Write(a));

  const testutil::EnvExtra env = {{"TZ", "UTC"}, {"LC_ALL", "C"}};
  testutil::RunResult list =
      testutil::Run(kTar, {"--quoting-style=literal", "-tvf", tar_path}, 30s, env);
  ASSERT_EQ(list.exit_code, 0) << list.stderr_text;
  EXPECT_EQ(list.stderr_text, "");
  std::vector<std::string> names;
  std::vector<std::string> want_names = {"metadata.json"};
  for (const auto& [path, source] : a.modules) want_names.push_back("modules" + path);
  for (const auto& [path, lines] : a.line_maps) want_names.push_back("lines" + path);
  for (const auto& [path, contents] : a.files) want_names.push_back("files" + path);
  std::istringstream lines(list.stdout_text);
  for (std::string line; std::getline(lines, line);) {
    // -rw-r--r-- 0/0       7 1970-01-01 00:00 files/home/u/test/data.bin
    std::istringstream fields(line);
    std::string mode, owner, size, date, time, name;
    fields >> mode >> owner >> size >> date >> time >> name;
    EXPECT_EQ(mode, "-rw-r--r--") << line;
    EXPECT_EQ(owner, "0/0") << line;
    EXPECT_EQ(date + " " + time, "1970-01-01 00:00") << line;
    names.push_back(name);
  }
  EXPECT_THAT(names, ElementsAreArray(want_names));

  const std::string out = dir + "/out";
  std::filesystem::create_directories(out);
  testutil::RunResult extract = testutil::Run(kTar, {"-xf", tar_path, "-C", out}, 30s, env);
  ASSERT_EQ(extract.exit_code, 0) << extract.stderr_text;
  for (const auto& [path, source] : a.modules) EXPECT_EQ(ReadFile(out + "/modules" + path), source) << path;
  for (const auto& [path, contents] : a.files) EXPECT_EQ(ReadFile(out + "/files" + path), contents) << path;
  for (const auto& [path, lines] : a.line_maps) EXPECT_EQ(ReadFile(out + "/lines" + path), lines.Encode()) << path;
  const nlohmann::json meta = nlohmann::json::parse(ReadFile(out + "/metadata.json"));
  EXPECT_EQ(meta["main"], a.main_path);
  EXPECT_EQ(meta["formatVersion"], 2);  // it holds line maps
  EXPECT_EQ(meta["options"]["vus"], 10);
  EXPECT_EQ(meta["env"]["TARGET"], "127.0.0.1:9001");
}

struct GnuTarCase {
  std::string format;  // --format=
  bool dot;            // `tar -C dir .` (./ names, a ./ directory) or the three names
};

class ArchiveReadsGnuTarTest : public ::testing::TestWithParam<GnuTarCase> {};

TEST_P(ArchiveReadsGnuTarTest, ReadsArchiveMadeFromADirectory) {
  if (!HaveTar()) GTEST_SKIP() << kTar << " is missing; cannot make archives with GNU tar";
  const GnuTarCase& c = GetParam();
  Archive want;
  want.main_path = "/home/u/script.js";
  want.modules[want.main_path] = "exports.default = function () {};\n";
  want.modules["/home/u/lib/util.js"] = "exports.x = 1;\n";
  want.line_maps["/home/u/lib/util.js"] = LineMap({0, 2});
  want.files["/home/u/data.bin"] = Binary(1500, 3);
  want.files["/home/u/empty"] = "";
  want.files[kSplitPath] = "split";  // GNU tar uses the ustar prefix here too
  if (c.format != "ustar") {         // ustar cannot hold these at all
    want.modules[kDeepPath] = "exports.deep = 1;\n";
    want.files[kLongNamePath] = "long";
  }
  want.options_json = R"({"vus":2})";
  want.env = {{"A", "b"}};
  want.barrage_version = "hand-made";

  const std::string dir = testutil::TempDir();
  const std::string src = dir + "/src";
  WriteFile(src + "/metadata.json", R"({"format": "barrage-archive", "formatVersion": 2,
      "main": "/home/u/script.js", "options": {"vus": 2}, "env": {"A": "b"},
      "barrageVersion": "hand-made"})");
  for (const auto& [path, source] : want.modules) WriteFile(src + "/modules" + path, source);
  for (const auto& [path, contents] : want.files) WriteFile(src + "/files" + path, contents);
  for (const auto& [path, lines] : want.line_maps) WriteFile(src + "/lines" + path, lines.Encode());
  std::vector<std::string> args = {"--format=" + c.format, "-cf", dir + "/test.tar", "-C", src};
  if (c.dot) {
    args.push_back(".");
  } else {
    args.insert(args.end(), {"metadata.json", "modules", "lines", "files"});
  }
  testutil::RunResult made = testutil::Run(kTar, args, 30s);
  ASSERT_EQ(made.exit_code, 0) << made.stderr_text;

  absl::StatusOr<Archive> got = Read(ReadFile(dir + "/test.tar"));
  ASSERT_THAT(got, IsOk());
  ExpectSameArchive(*got, want);
}

INSTANTIATE_TEST_SUITE_P(Formats, ArchiveReadsGnuTarTest,
                         ::testing::Values(GnuTarCase{"ustar", true}, GnuTarCase{"ustar", false},
                                           GnuTarCase{"pax", true}, GnuTarCase{"pax", false},
                                           GnuTarCase{"gnu", true}),
                         [](const ::testing::TestParamInfo<GnuTarCase>& info) {
                           return info.param.format + (info.param.dot ? "_Dot" : "_Names");
                         });

// ------------------------------------------------------------ other tars' headers

TEST(ArchiveTest, ReadsPaxSizeRecordAndGnuLongNameAndBase256Size) {
  const std::string pax_records = Pax("path", "files/p") + Pax("size", "3");
  std::string sized = Header("cut-short-name", 999);  // the pax size wins
  std::string long_name = "files/" + Component(150, 'g');
  std::string base256 = Header("files/b", 0);
  base256.replace(124, 12, std::string("\x80\0\0\0\0\0\0\0\0\0\0\x04", 12));
  const std::string tar = Tar({Entry("metadata.json", Meta()), Entry("modules/x.js", "x"),
                               Entry("././@PaxHeader", pax_records, 'x'), Seal(sized) + Padded("abc"),
                               Entry("././@LongLink", long_name + '\0', 'L'),
                               Entry(long_name.substr(0, 100), "gnu"), Seal(base256) + Padded("four"),
                               Entry("pax_global_header", Pax("comment", "whatever"), 'g')});
  absl::StatusOr<Archive> got = Read(tar);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->files["/p"], "abc");
  EXPECT_EQ(got->files["/" + Component(150, 'g')], "gnu");
  EXPECT_EQ(got->files["/b"], "four");
}

// ------------------------------------------------------------ errors

MATCHER_P(InvalidWith, message, "") {
  return ::testing::ExplainMatchResult(StatusIs(absl::StatusCode::kInvalidArgument, message),
                                       arg, result_listener);
}

TEST(ArchiveErrorTest, SizeOverTheLimitIsRefusedBeforeParsing) {
  // Not even a tar file: the size is what is reported, as it is checked first.
  EXPECT_THAT(ReadArchive(std::string(5'000'000, 'x'), "test.tar", 1'000'000),
              InvalidWith(Eq("test.tar: archive is 5000000 bytes, over the limit of 1000000")));
  const std::string bytes = Write(Sample());
  EXPECT_THAT(ReadArchive(bytes, "test.tar", bytes.size()), IsOk());
  EXPECT_THAT(ReadArchive(bytes, "test.tar", bytes.size() - 1),
              InvalidWith(Eq("test.tar: archive is " + std::to_string(bytes.size()) +
                             " bytes, over the limit of " + std::to_string(bytes.size() - 1))));
}

TEST(ArchiveErrorTest, NotATarFile) {
  EXPECT_THAT(Read(""), InvalidWith(Eq("test.tar: not a tar file (empty)")));
  EXPECT_THAT(Read("export default function () {}\n"),
              InvalidWith(Eq("test.tar: not a tar file (shorter than one header)")));
  std::string script(2048, ' ');
  script.replace(0, 30, "export default function () {}\n");
  EXPECT_THAT(Read(script), InvalidWith(Eq("test.tar: not a tar file (no ustar header at offset 0)")));
}

TEST(ArchiveErrorTest, CorruptHeaders) {
  const std::string good = Tar({Entry("metadata.json", Meta()), Entry("modules/x.js", "x")});
  std::string first = good;
  first[3] ^= 1;
  EXPECT_THAT(Read(first), InvalidWith(Eq("test.tar: corrupt header at offset 0 (checksum mismatch)")));
  std::string second = good;
  second[1024 + 9] = 'y';
  EXPECT_THAT(Read(second), InvalidWith(Eq("test.tar: corrupt header at offset 1024 (checksum mismatch)")));
  std::string magic = good;
  magic.replace(1024 + 257, 5, "UStar");
  EXPECT_THAT(Read(magic), InvalidWith(Eq("test.tar: corrupt header at offset 1024 (no ustar magic)")));
  std::string size = Header("modules/x.js", 1);
  size.replace(124, 11, "12345678909");  // 9 is not octal
  EXPECT_THAT(Read(Tar({Entry("metadata.json", Meta()), Seal(size) + Padded("x")})),
              InvalidWith(Eq("test.tar: corrupt header at offset 1024 (bad size field)")));
}

TEST(ArchiveErrorTest, Truncated) {
  const std::string data(1000, 'j');
  const std::string entries = Entry("metadata.json", Meta()) + Entry("modules/x.js", data);
  const std::string tar = entries + End();
  // In the data, and in the zero padding after it.
  for (size_t cut : {1024 + 512 + 500, 1024 + 512 + 1000 + 5}) {
    EXPECT_THAT(Read(tar.substr(0, cut)), InvalidWith(Eq("test.tar: truncated at entry \"modules/x.js\"")))
        << cut;
  }
  // After the last entry: no marker, half of it, part of a next header.
  const std::string after = "test.tar: truncated after entry \"modules/x.js\" (no end-of-archive marker)";
  for (size_t cut : {entries.size(), entries.size() + 512, entries.size() + 700}) {
    EXPECT_THAT(Read(tar.substr(0, cut)), InvalidWith(Eq(after))) << cut;
  }
  EXPECT_THAT(Read(entries + Header("files/y", 0).substr(0, 300)), InvalidWith(Eq(after)));
  // Even in WriteArchive's output, wherever it is cut.
  const std::string ours = Write(Sample());
  for (size_t cut = 512; cut < ours.size(); cut += 4099) {
    EXPECT_THAT(Read(ours.substr(0, cut)), InvalidWith(StartsWith("test.tar: truncated "))) << cut;
  }
}

TEST(ArchiveErrorTest, DataAfterTheEndMarker) {
  const std::string tar = Tar({Entry("metadata.json", Meta()), Entry("modules/x.js", "x")});
  EXPECT_THAT(Read(tar + std::string(9216, '\0')), IsOk());  // GNU tar's record padding
  EXPECT_THAT(Read(tar + std::string(100, '\0') + "junk"),
              InvalidWith(Eq("test.tar: unexpected data after the end-of-archive marker at offset " +
                             std::to_string(tar.size() + 100))));
  // A lone zero block, then another entry.
  const std::string lone = Entry("metadata.json", Meta()) + Entry("modules/x.js", "x") +
                           std::string(512, '\0') + Entry("files/y", "y") + End();
  EXPECT_THAT(Read(lone), InvalidWith(Eq("test.tar: unexpected data after the end-of-archive marker at offset 2560")));
}

TEST(ArchiveErrorTest, UnknownEntries) {
  const std::string holds = " (a barrage archive holds metadata.json, modules/..., https/..., lines/... and files/...)";
  const std::string meta = Entry("metadata.json", Meta());
  EXPECT_THAT(Read(Tar({meta, Entry("notes.txt", "hi")})),
              InvalidWith(Eq("test.tar: unknown entry \"notes.txt\"" + holds)));
  // A k6 archive's layout.
  EXPECT_THAT(Read(Tar({meta, Entry("file/home/u/x.js", "x")})),
              InvalidWith(Eq("test.tar: unknown entry \"file/home/u/x.js\"" + holds)));
  EXPECT_THAT(Read(Tar({meta, Entry("other/", "", '5')})),
              InvalidWith(Eq("test.tar: unknown entry \"other/\"" + holds)));
}

TEST(ArchiveErrorTest, OnlyRegularFilesAndDirectories) {
  const std::string meta = Entry("metadata.json", Meta());
  const std::string only = "; an archive holds only regular files and directories";
  std::string symlink = Header("modules/link.js", 0, '2');
  symlink.replace(157, 13, "/etc/hostname");
  EXPECT_THAT(Read(Tar({meta, Seal(symlink)})),
              InvalidWith(Eq("test.tar: entry \"modules/link.js\" is a symbolic link" + only)));
  EXPECT_THAT(Read(Tar({meta, Entry("files/h", "", '1')})),
              InvalidWith(Eq("test.tar: entry \"files/h\" is a hard link" + only)));
  EXPECT_THAT(Read(Tar({meta, Entry("files/f", "", '6')})),
              InvalidWith(Eq("test.tar: entry \"files/f\" is a FIFO" + only)));
  EXPECT_THAT(Read(Tar({meta, Entry("files/v", "", 'V')})),
              InvalidWith(Eq("test.tar: entry \"files/v\" is of type 'V'" + only)));
}

TEST(ArchiveErrorTest, DuplicateEntries) {
  const std::string meta = Entry("metadata.json", Meta());
  EXPECT_THAT(Read(Tar({meta, Entry("modules/x.js", "1"), Entry("./modules/x.js", "2")})),
              InvalidWith(Eq("test.tar: duplicate entry \"./modules/x.js\"")));
  EXPECT_THAT(Read(Tar({meta, Entry("modules/x.js", "1"), meta})),
              InvalidWith(Eq("test.tar: duplicate entry \"metadata.json\"")));
  // The same path as a module and as a file is two entries, not a duplicate.
  EXPECT_THAT(Read(Tar({meta, Entry("modules/x.js", "1"), Entry("files/x.js", "2")})), IsOk());
}

TEST(ArchiveErrorTest, UnsafePaths) {
  const std::string meta = Entry("metadata.json", Meta());
  const std::string component = " has an empty, \".\" or \"..\" path component";
  for (const char* name : {"modules/../../etc/passwd", "files/a/./b", "files//x", "modules/",
                           "files/a/"}) {
    EXPECT_THAT(Read(Tar({meta, Entry("modules/x.js", "x"), Entry(name, "")})),
                InvalidWith(Eq(std::string("test.tar: entry \"") + name + "\"" + component)));
  }
  EXPECT_THAT(Read(Tar({meta, Entry("modules/x.js", "x"), Entry("files/../", "", '5')})),
              InvalidWith(Eq("test.tar: entry \"files/../\"" + component)));
  for (const char* name : {"https/h/a/../x.js", "https//x.js", "https/h//x.js", "https/us@r/x.js"}) {
    EXPECT_THAT(Read(Tar({meta, Entry("modules/x.js", "x"), Entry(name, "")})),
                InvalidWith(Eq(std::string("test.tar: entry \"") + name +
                               "\" does not name an https URL with a clean path")));
  }
}

TEST(ArchiveErrorTest, MissingOrBadMetadata) {
  const std::string module = Entry("modules/x.js", "x");
  EXPECT_THAT(Read(Tar({module})), InvalidWith(Eq("test.tar: not a barrage archive (no metadata.json)")));
  EXPECT_THAT(Read(End()), InvalidWith(Eq("test.tar: not a barrage archive (no metadata.json)")));
  auto with_meta = [&](const std::string& meta) { return Read(Tar({Entry("metadata.json", meta), module})); };
  EXPECT_THAT(with_meta("{\"format\": "),
              InvalidWith(StartsWith("test.tar: metadata.json is not valid JSON: [json.exception.parse_error")));
  EXPECT_THAT(with_meta("[1]"), InvalidWith(Eq("test.tar: metadata.json: expected a JSON object")));
  // What `k6 archive` writes.
  EXPECT_THAT(with_meta(R"({"type": "js", "filename": "file:///x.js", "k6version": "0.50.0"})"),
              InvalidWith(Eq("test.tar: not a barrage archive (metadata.json has no \"format\": \"barrage-archive\")")));
  EXPECT_THAT(with_meta(R"({"format": "barrage-archive", "formatVersion": "1", "main": "/x.js"})"),
              InvalidWith(Eq("test.tar: metadata.json: \"formatVersion\" must be a positive integer")));
  EXPECT_THAT(with_meta(R"({"format": "barrage-archive", "formatVersion": 3, "main": "/x.js",
                            "barrageVersion": "9.0.0"})"),
              InvalidWith(Eq("test.tar: archive format version 3 (made by barrage 9.0.0) is newer than "
                             "this barrage reads (2)")));
  EXPECT_THAT(with_meta(R"({"format": "barrage-archive", "formatVersion": 1})"),
              InvalidWith(Eq("test.tar: metadata.json: \"main\" must be a non-empty string")));
  EXPECT_THAT(with_meta(R"({"format": "barrage-archive", "formatVersion": 1, "main": "/x.js", "options": []})"),
              InvalidWith(Eq("test.tar: metadata.json: \"options\" must be an object")));
  EXPECT_THAT(with_meta(R"({"format": "barrage-archive", "formatVersion": 1, "main": "/x.js", "env": {"VUS": 10}})"),
              InvalidWith(Eq("test.tar: metadata.json: \"env.VUS\" must be a string")));
  EXPECT_THAT(with_meta(R"({"format": "barrage-archive", "formatVersion": 1, "main": "/x.js",
                            "barrageVersion": 1})"),
              InvalidWith(Eq("test.tar: metadata.json: \"barrageVersion\" must be a string")));
}

TEST(ArchiveErrorTest, BadLineMaps) {
  const std::string meta = Entry("metadata.json", Meta());
  const std::string module = Entry("modules/x.js", "x");
  EXPECT_THAT(Read(Tar({meta, module, Entry("lines/x.js", "1 2 x")})),
              InvalidWith(Eq("test.tar: entry \"lines/x.js\": expected a line number at offset 4")));
  EXPECT_THAT(Read(Tar({meta, module, Entry("lines/x.js", "1  2")})),
              InvalidWith(Eq("test.tar: entry \"lines/x.js\": expected a line number at offset 2")));
  EXPECT_THAT(Read(Tar({meta, module, Entry("lines/x.js", "99999999999")})),
              InvalidWith(Eq("test.tar: entry \"lines/x.js\": line number too large at offset 0")));
  EXPECT_THAT(Read(Tar({meta, module, Entry("lines/y.js", "1")})),
              InvalidWith(Eq("test.tar: entry \"lines/y.js\" is the line map of no module")));
  EXPECT_THAT(Read(Tar({meta, module, Entry("lines/x.js", "1"), Entry("./lines/x.js", "1")})),
              InvalidWith(Eq("test.tar: duplicate entry \"./lines/x.js\"")));
  EXPECT_THAT(Read(Tar({meta, module, Entry("lines/../x.js", "1")})),
              InvalidWith(Eq("test.tar: entry \"lines/../x.js\" has an empty, \".\" or \"..\" path component")));
  EXPECT_THAT(Read(Tar({meta, module, Entry("lines/x.js", "")})), IsOk());  // an empty map: no lines known
}

TEST(ArchiveErrorTest, MainScriptNotAmongModules) {
  // Only as a file is not enough: a file is not compiled.
  EXPECT_THAT(Read(Tar({Entry("metadata.json", Meta("/m.js")), Entry("modules/x.js", "x"),
                        Entry("files/m.js", "m")})),
              InvalidWith(Eq("test.tar: main script \"/m.js\" is not among the archive's modules")));
  // A remote module is no main script: the script's folder must be a local one.
  EXPECT_THAT(Read(Tar({Entry("metadata.json", Meta("https://h/m.js")), Entry("https/h/m.js", "m")})),
              InvalidWith(Eq("test.tar: main script \"https://h/m.js\" is not an absolute, clean path")));
}

TEST(ArchiveErrorTest, BadPaxHeaders) {
  const std::string meta = Entry("metadata.json", Meta());
  EXPECT_THAT(Read(Tar({meta, Entry("././@PaxHeader", "garbage", 'x'), Entry("modules/x.js", "x")})),
              InvalidWith(Eq("test.tar: malformed pax header at offset 1024")));
  EXPECT_THAT(Read(Tar({meta, Entry("././@PaxHeader", "99 path=modules/x.js\n", 'x'),
                        Entry("modules/x.js", "x")})),
              InvalidWith(Eq("test.tar: malformed pax header at offset 1024")));
  EXPECT_THAT(Read(Tar({meta, Entry("modules/x.js", "x"), Entry("././@PaxHeader", Pax("path", "files/y.js"), 'x')})),
              InvalidWith(Eq("test.tar: extended header \"././@PaxHeader\" is not followed by an entry")));
}

}  // namespace
}  // namespace barrage
