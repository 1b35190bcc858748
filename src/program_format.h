// Judges a program by its first bytes as execve(2) would: an ELF this machine runs, a "#!"
// script, a format a binfmt_misc handler takes, or none of these (ENOEXEC).
//
// Pure: the caller reads the bytes (start_preflight.h) and asks the file system about a
// script's interpreter. This is not a loader: an ELF whose header passes may still fail to
// load (a missing dynamic loader, a newer glibc); those are reported by the worker's exec.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace clusterd {

// How many leading bytes the kernel reads to choose a format (BINPRM_BUF_SIZE): a "#!" line
// longer than this cannot name its interpreter whole.
inline constexpr std::size_t program_head_size = 256;

// Whom an ELF file is built for: the three fields the kernel's ELF loader compares.
struct ElfTarget {
  unsigned elf_class = 0;   // EI_CLASS: 1 = 32-bit, 2 = 64-bit
  unsigned byte_order = 0;  // EI_DATA: 1 = little-endian, 2 = big-endian
  unsigned machine = 0;     // e_machine, read in the file's byte order
  bool operator==(const ElfTarget&) const = default;
};

// The interpreter line of a script, split as the kernel splits it (binfmt_script): the
// interpreter up to the first blank, then the rest of the line, blanks trimmed, as one argument.
struct Shebang {
  std::string interpreter;  // as written, possibly relative; empty when the line names none
  std::string argument;     // empty when there is none
};

// What the first bytes say.
struct ProgramHead {
  enum class Kind {
    elf,        // elf, elf_type hold the header's fields
    script,     // starts with "#!"
    other,      // neither: only a binfmt_misc handler could run it
  };
  Kind kind = Kind::other;
  ElfTarget elf;
  unsigned elf_type = 0;  // e_type: 2 = ET_EXEC, 3 = ET_DYN; 1 (ET_REL) and 4 (ET_CORE) do not run
  Shebang shebang;
};

// Reads `head`, the first program_head_size bytes of a file (fewer for a shorter file). An ELF
// magic with a header too short to hold e_machine is `other`: the kernel refuses it.
ProgramHead read_program_head(std::string_view head);

// Whether a kernel that runs `own` programs (clusterd's own ELF) also runs ones built for `file`:
// the same machine in either class (x32, n32, s390 31-bit), or a 32-bit machine the 64-bit one
// commonly emulates (i386 on x86-64, ARM on AArch64, PowerPC on PPC64, SPARC on SPARC V9), always
// in the same byte order. Whether this kernel was built with that emulation is not visible
// cheaply, so it gets the benefit of the doubt: check must not refuse what a start could run.
bool elf_runs_beside(const ElfTarget& file, const ElfTarget& own);

// "x86-64 (64-bit)", "AArch64 (64-bit)", "i386 (32-bit)"; "machine 999 (32-bit, big-endian)" for
// one without a name here; the byte order is said only when it is big-endian.
std::string elf_target_name(const ElfTarget& target);

// Whether the binfmt_misc handler whose /proc/sys/fs/binfmt_misc/NAME file reads `entry` would
// run a file whose path is `path` and whose first bytes are `head`: "enabled", then a magic
// (with its mask) at its offset, or an extension that the text after the last '.' of `path`
// equals, as fs/binfmt_misc.c matches them. A disabled or unreadable entry runs nothing.
bool binfmt_handler_runs(std::string_view entry, std::string_view path, std::string_view head);

// Why execve would refuse a file that starts with `head`, judged from those bytes alone, in a
// phrase that follows `cannot execute "PATH": ` and ends with the fix; nullopt for an ELF program
// that runs beside `own` (or any ELF program when `own` is unknown) and for a "#!" line that
// names an interpreter, which the caller must then find.
std::optional<std::string> program_head_problem(const ProgramHead& head, const std::optional<ElfTarget>& own);

}  // namespace clusterd
