#include "agent/js/bytecode_lines.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace barrage::agent::js {
namespace {

// duk_api_bytecode.c (Duktape 2.7): the dump starts with this byte, then
// the outermost function; numbers are big-endian.
constexpr uint8_t kMarker = 0xbf;
constexpr uint8_t kConstString = 0x00;
constexpr uint8_t kConstNumber = 0x01;
constexpr uint32_t kNoFormals = 0xffffffff;
// duk_hobject_pc2line.c: a header entry (start line, offset of the diff
// run) for every 64 instructions.
constexpr uint32_t kPc2LineSkip = 64;

absl::Status FormatError(absl::string_view what, size_t at) {
  return absl::InternalError(absl::StrCat("bytecode is not Duktape 2.7's dump format: ", what, " at offset ", at));
}

// Reads the dump and copies what it reads to `out` unless told otherwise.
class Walker {
 public:
  Walker(absl::string_view in, const LineMap& map, std::string& out) : in_(in), map_(map), out_(out) {}

  absl::Status Run() {
    if (in_.empty() || static_cast<uint8_t>(in_[0]) != kMarker) return FormatError("no marker", 0);
    pos_ = 1;
    out_.push_back(in_[0]);
    absl::Status st = Function(0);
    if (!st.ok()) return st;
    if (pos_ != in_.size()) return FormatError("bytes after the outermost function", pos_);
    return absl::OkStatus();
  }

 private:
  bool Have(size_t n) const { return in_.size() - pos_ >= n; }
  uint32_t PeekU32(size_t ahead = 0) const {
    const auto* p = reinterpret_cast<const uint8_t*>(in_.data() + pos_ + ahead);
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
  }
  // Copies n bytes.
  absl::Status Copy(size_t n, absl::string_view what) {
    if (!Have(n)) return FormatError(absl::StrCat(what, " cut short"), pos_);
    out_.append(in_.data() + pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }
  absl::Status CopyU32(uint32_t* value, absl::string_view what) {
    if (!Have(4)) return FormatError(absl::StrCat(what, " cut short"), pos_);
    *value = PeekU32();
    return Copy(4, what);
  }
  // A u32 length, then that many bytes.
  absl::Status CopyString(absl::string_view what, uint32_t* length = nullptr) {
    uint32_t n = 0;
    absl::Status st = CopyU32(&n, what);
    if (!st.ok()) return st;
    if (length != nullptr) *length = n;
    return Copy(n, what);
  }

  absl::Status Function(int depth) {
    // Duktape's own dump recurses as deep as functions nest; the compiler
    // bounds that nesting, this only guards against a runaway parse.
    if (depth > 1000) return FormatError("functions nested too deep", pos_);
    if (!Have(28)) return FormatError("function header cut short", pos_);
    const uint32_t count_instr = PeekU32(0);
    const uint32_t count_const = PeekU32(4);
    const uint32_t count_funcs = PeekU32(8);
    // counts, nregs, nargs, start_line, end_line (0 without debugger
    // support), flags.
    absl::Status st = Copy(28, "function header");
    if (!st.ok()) return st;
    if (count_instr > (in_.size() - pos_) / 4) return FormatError("instructions cut short", pos_);
    st = Copy(size_t{count_instr} * 4, "instructions");
    if (!st.ok()) return st;
    for (uint32_t i = 0; i < count_const; ++i) {
      if (!Have(1)) return FormatError("constants cut short", pos_);
      const auto type = static_cast<uint8_t>(in_[pos_]);
      st = Copy(1, "constant");
      if (!st.ok()) return st;
      if (type == kConstString) {
        st = CopyString("string constant");
      } else if (type == kConstNumber) {
        st = Copy(8, "number constant");
      } else {
        return FormatError(absl::StrCat("constant of unknown type ", type), pos_ - 1);
      }
      if (!st.ok()) return st;
    }
    for (uint32_t i = 0; i < count_funcs; ++i) {
      st = Function(depth + 1);
      if (!st.ok()) return st;
    }
    uint32_t ignored = 0;
    st = CopyU32(&ignored, "length");  // .length
    if (st.ok()) st = CopyString("name");
    if (st.ok()) st = CopyString("file name");
    if (st.ok()) st = Pc2Line(count_instr);
    if (!st.ok()) return st;
    // _Varmap: (name, register) pairs up to an empty name.
    while (true) {
      uint32_t length = 0;
      st = CopyString("variable map", &length);
      if (!st.ok()) return st;
      if (length == 0) break;
      st = CopyU32(&ignored, "variable map");
      if (!st.ok()) return st;
    }
    uint32_t formals = 0;
    st = CopyU32(&formals, "formals");
    if (!st.ok()) return st;
    if (formals != kNoFormals) {
      for (uint32_t i = 0; i < formals; ++i) {
        st = CopyString("formals");
        if (!st.ok()) return st;
      }
    }
    return absl::OkStatus();
  }

  // The pc2line buffer: read, mapped, written back in Duktape's encoding.
  absl::Status Pc2Line(uint32_t count_instr) {
    if (!Have(4)) return FormatError("pc2line cut short", pos_);
    const uint32_t size = PeekU32();
    const size_t start = pos_ + 4;
    if (in_.size() - start < size) return FormatError("pc2line cut short", pos_);
    const absl::string_view table = in_.substr(start, size);
    if (size == 0) return Copy(4, "pc2line");  // a function without one
    std::vector<uint32_t> lines;
    absl::Status st = Decode(table, count_instr, lines);
    if (!st.ok()) return st;
    for (uint32_t& line : lines) line = map_.Original(line);
    const std::string encoded = Encode(lines);
    const auto n = static_cast<uint32_t>(encoded.size());
    const char be[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                        static_cast<char>(n)};
    out_.append(be, 4);
    out_.append(encoded);
    pos_ = start + size;
    return absl::OkStatus();
  }

  // The header's words are in the machine's byte order: Duktape copies the
  // buffer as bytes, and we read it on the machine that wrote it.
  static uint32_t NativeU32(absl::string_view table, size_t at) {
    uint32_t v = 0;
    std::memcpy(&v, table.data() + at, 4);
    return v;
  }

  // MSB-first bit reader, as duk_bd_decode (zeros past the end).
  struct BitReader {
    const uint8_t* data;
    size_t length;
    size_t offset = 0;
    uint32_t currval = 0;
    int currbits = 0;
    uint32_t Read(int bits) {
      while (currbits < bits) {
        currval <<= 8;
        if (offset < length) currval |= data[offset++];
        currbits += 8;
      }
      const int shift = currbits - bits;
      currbits = shift;
      return (currval >> shift) & ((uint32_t{1} << bits) - 1);
    }
  };

  absl::Status Decode(absl::string_view table, uint32_t count_instr, std::vector<uint32_t>& lines) const {
    const size_t at = pos_ + 4;
    const uint64_t runs = (uint64_t{count_instr} + kPc2LineSkip - 1) / kPc2LineSkip;
    if (table.size() < 4 + runs * 8) return FormatError("pc2line header cut short", at);
    if (NativeU32(table, 0) != count_instr) return FormatError("pc2line does not cover the instructions", at);
    lines.resize(count_instr);
    for (uint64_t run = 0; run < runs; ++run) {
      uint32_t line = NativeU32(table, 4 + run * 8);
      const uint32_t offset = NativeU32(table, 4 + run * 8 + 4);
      if (offset > table.size()) return FormatError("pc2line offset out of range", at);
      BitReader bits{reinterpret_cast<const uint8_t*>(table.data()) + offset, table.size() - offset};
      const uint64_t base = run * kPc2LineSkip;
      lines[base] = line;
      for (uint64_t pc = base + 1; pc < base + kPc2LineSkip && pc < count_instr; ++pc) {
        if (bits.Read(1) != 0) {
          if (bits.Read(1) != 0) {
            if (bits.Read(1) != 0) {
              const uint32_t high = bits.Read(16);  // 1 1 1 <32 bits>: the line itself
              line = (high << 16) | bits.Read(16);
            } else {
              line = line + bits.Read(8) - 0x80;  // 1 1 0 <8 bits>: -128..127
            }
          } else {
            line = line + bits.Read(2) + 1;  // 1 0 <2 bits>: +1..+4
          }
        }  // 0: the same line
        lines[pc] = line;
      }
    }
    return absl::OkStatus();
  }

  // MSB-first bit writer, as duk_be_encode and duk_be_finish (which pads a
  // whole zero byte when the stream already ends on a byte boundary).
  struct BitWriter {
    std::string& out;
    uint32_t currval = 0;
    int currbits = 0;
    void Write(uint32_t data, int bits) {
      currval = (currval << bits) | data;
      currbits += bits;
      while (currbits >= 8) {
        out.push_back(static_cast<char>((currval >> (currbits - 8)) & 0xff));
        currbits -= 8;
      }
    }
    void Finish() { Write(0, 8 - currbits); }
  };

  // duk_hobject_pc2line_pack's output for these lines.
  static std::string Encode(const std::vector<uint32_t>& lines) {
    const auto length = static_cast<uint32_t>(lines.size());
    const uint32_t runs = (length + kPc2LineSkip - 1) / kPc2LineSkip;
    std::string out(4 + size_t{runs} * 8, '\0');
    std::memcpy(out.data(), &length, 4);
    for (uint32_t run = 0; run < runs; ++run) {
      const uint32_t base = run * kPc2LineSkip;
      const auto offset = static_cast<uint32_t>(out.size());
      std::memcpy(out.data() + 4 + size_t{run} * 8, &lines[base], 4);
      std::memcpy(out.data() + 4 + size_t{run} * 8 + 4, &offset, 4);
      BitWriter bits{out};
      for (uint32_t pc = base + 1; pc < base + kPc2LineSkip && pc < length; ++pc) {
        const int64_t diff = int64_t{lines[pc]} - int64_t{lines[pc - 1]};
        if (diff == 0) {
          bits.Write(0, 1);
        } else if (diff >= 1 && diff <= 4) {
          bits.Write((0x02 << 2) + static_cast<uint32_t>(diff - 1), 4);
        } else if (diff >= -0x80 && diff <= 0x7f) {
          bits.Write((0x06 << 8) + static_cast<uint32_t>(diff + 0x80), 11);
        } else {
          bits.Write((0x07 << 16) + ((lines[pc] >> 16) & 0xffff), 19);
          bits.Write(lines[pc] & 0xffff, 16);
        }
      }
      bits.Finish();
    }
    return out;
  }

  absl::string_view in_;
  const LineMap& map_;
  std::string& out_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<std::string> RemapBytecodeLines(absl::string_view bytecode, const LineMap& map) {
  std::string out;
  out.reserve(bytecode.size());
  Walker walker(bytecode, map, out);
  absl::Status st = walker.Run();
  if (!st.ok()) return st;
  return out;
}

}  // namespace barrage::agent::js
