// BARRAGE_INCBIN(name, path): the file at `path` in the binary's read-only
// data, pulled in at assembly time (.incbin), between name_start and
// name_end (a NUL follows, so the text is also a C string). Used for what
// the binaries carry instead of reading at run time: Babel and the
// prelude (agent/js), the dashboard's page (controller/dashboard).
#ifndef BARRAGE_COMMON_INCBIN_H_
#define BARRAGE_COMMON_INCBIN_H_

#define BARRAGE_INCBIN(name, path)                    \
  __asm__(".section .rodata\n"                      \
          ".global " #name "_start\n"               \
          ".balign 16\n" #name "_start:\n"          \
          ".incbin \"" path "\"\n"                  \
          ".global " #name "_end\n" #name "_end:\n" \
          ".byte 0\n"                               \
          ".previous\n");                           \
  extern "C" const char name##_start[];             \
  extern "C" const char name##_end[];

#endif  // BARRAGE_COMMON_INCBIN_H_
