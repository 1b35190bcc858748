// Judges a program by its first bytes as execve(2) would (binfmt_elf, binfmt_script, binfmt_misc).
#include "program_format.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

namespace clusterd {
namespace {

// e_machine values (elf.h), spelled here to keep this module free of system headers.
constexpr unsigned em_sparc = 2;
constexpr unsigned em_386 = 3;
constexpr unsigned em_mips = 8;
constexpr unsigned em_ppc = 20;
constexpr unsigned em_ppc64 = 21;
constexpr unsigned em_s390 = 22;
constexpr unsigned em_arm = 40;
constexpr unsigned em_sparcv9 = 43;
constexpr unsigned em_x86_64 = 62;
constexpr unsigned em_aarch64 = 183;
constexpr unsigned em_riscv = 243;
constexpr unsigned em_loongarch = 258;

constexpr unsigned elf_big_endian = 2;
constexpr std::size_t e_type_offset = 16;
constexpr std::size_t e_machine_offset = 18;

unsigned byte_at(std::string_view bytes, std::size_t index) { return static_cast<unsigned char>(bytes[index]); }

unsigned read_u16(std::string_view bytes, std::size_t offset, unsigned byte_order) {
  const unsigned first = byte_at(bytes, offset);
  const unsigned second = byte_at(bytes, offset + 1);
  return byte_order == elf_big_endian ? (first << 8) | second : (second << 8) | first;
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_blanks(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) {
    text.remove_prefix(1);
  }
  while (!text.empty() && is_blank(text.back())) {
    text.remove_suffix(1);
  }
  return text;
}

// The 32-bit machines a 64-bit kernel of another machine number commonly runs (compat).
bool emulated_beside(unsigned file_machine, unsigned own_machine) {
  constexpr std::array<std::pair<unsigned, unsigned>, 4> pairs{{
      {em_x86_64, em_386},
      {em_aarch64, em_arm},
      {em_ppc64, em_ppc},
      {em_sparcv9, em_sparc},
  }};
  return std::find(pairs.begin(), pairs.end(), std::pair{own_machine, file_machine}) != pairs.end();
}

std::string_view machine_name(unsigned machine) {
  switch (machine) {
    case em_sparc: return "SPARC";
    case em_386: return "i386";
    case em_mips: return "MIPS";
    case em_ppc: return "PowerPC";
    case em_ppc64: return "PowerPC64";
    case em_s390: return "S/390";
    case em_arm: return "ARM";
    case em_sparcv9: return "SPARC V9";
    case em_x86_64: return "x86-64";
    case em_aarch64: return "AArch64";
    case em_riscv: return "RISC-V";
    case em_loongarch: return "LoongArch";
    default: return {};
  }
}

std::string_view elf_type_name(unsigned type) {
  switch (type) {
    case 0: return "an ELF file of no type (e_type 0)";
    case 1: return "an ELF relocatable object (e_type 1, a .o file)";
    case 4: return "an ELF core dump (e_type 4)";
    default: return {};
  }
}

// "7f454c46" → its bytes; nullopt for anything that is not an even run of hex digits.
std::optional<std::string> from_hex(std::string_view text) {
  if (text.size() % 2 != 0) {
    return std::nullopt;
  }
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
      return c - 'A' + 10;
    }
    return -1;
  };
  std::string bytes;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int high = digit(text[i]);
    const int low = digit(text[i + 1]);
    if (high < 0 || low < 0) {
      return std::nullopt;
    }
    bytes += static_cast<char>((high << 4) | low);
  }
  return bytes;
}

// The value of the line "KEY VALUE" (or "KEY: VALUE") of a binfmt_misc entry; nullopt if absent.
std::optional<std::string_view> entry_value(std::string_view entry, std::string_view key) {
  std::size_t start = 0;
  while (start < entry.size()) {
    const std::size_t end = std::min(entry.find('\n', start), entry.size());
    std::string_view line = entry.substr(start, end - start);
    start = end + 1;
    if (line.starts_with(key) && line.size() > key.size() &&
        (line[key.size()] == ' ' || line[key.size()] == ':')) {
      line.remove_prefix(key.size() + 1);
      return trim_blanks(line);
    }
  }
  return std::nullopt;
}

}  // namespace

ProgramHead read_program_head(std::string_view head) {
  ProgramHead result;
  if (head.starts_with("\x7f" "ELF")) {
    if (head.size() < e_machine_offset + 2) {
      return result;
    }
    result.kind = ProgramHead::Kind::elf;
    result.elf.elf_class = byte_at(head, 4);
    result.elf.byte_order = byte_at(head, 5);
    result.elf.machine = read_u16(head, e_machine_offset, result.elf.byte_order);
    result.elf_type = read_u16(head, e_type_offset, result.elf.byte_order);
    return result;
  }
  if (!head.starts_with("#!")) {
    return result;
  }
  result.kind = ProgramHead::Kind::script;
  std::string_view line = head.substr(2);
  line = line.substr(0, std::min(line.find('\n'), line.size()));
  line = trim_blanks(line);
  const std::size_t blank = std::min(line.find_first_of(" \t"), line.size());
  result.shebang.interpreter = std::string(line.substr(0, blank));
  result.shebang.argument = std::string(trim_blanks(line.substr(blank)));
  return result;
}

bool elf_runs_beside(const ElfTarget& file, const ElfTarget& own) {
  if (file.byte_order != own.byte_order) {
    return false;
  }
  if (file.machine == own.machine) {
    return true;
  }
  return file.elf_class == 1 && emulated_beside(file.machine, own.machine);
}

std::string elf_target_name(const ElfTarget& target) {
  const std::string_view name = machine_name(target.machine);
  std::string text = name.empty() ? "machine " + std::to_string(target.machine) : std::string(name);
  text += target.elf_class == 1 ? " (32-bit" : target.elf_class == 2 ? " (64-bit" : " (unknown class";
  text += target.byte_order == elf_big_endian ? ", big-endian)" : ")";
  return text;
}

bool binfmt_handler_runs(std::string_view entry, std::string_view path, std::string_view head) {
  if (!entry.starts_with("enabled")) {
    return false;
  }
  if (const auto extension = entry_value(entry, "extension")) {
    // fs/binfmt_misc.c: the text after the last '.' of the whole path, whatever follows it.
    const std::size_t dot = path.rfind('.');
    return dot != std::string_view::npos && extension->starts_with('.') &&
           path.substr(dot + 1) == extension->substr(1);
  }
  const auto magic_text = entry_value(entry, "magic");
  if (!magic_text) {
    return false;
  }
  const auto magic = from_hex(*magic_text);
  const auto offset_text = entry_value(entry, "offset");
  std::size_t offset = 0;
  if (offset_text) {
    for (const char c : *offset_text) {
      if (c < '0' || c > '9' || offset > program_head_size) {
        return false;
      }
      offset = offset * 10 + static_cast<std::size_t>(c - '0');
    }
  }
  if (!magic || offset + magic->size() > head.size()) {
    return false;
  }
  std::optional<std::string> mask;
  if (const auto mask_text = entry_value(entry, "mask")) {
    mask = from_hex(*mask_text);
    if (!mask || mask->size() != magic->size()) {
      return false;
    }
  }
  for (std::size_t i = 0; i < magic->size(); ++i) {
    const unsigned bits = mask ? byte_at(*mask, i) : 0xffu;
    if ((byte_at(head, offset + i) & bits) != byte_at(*magic, i)) {
      return false;
    }
  }
  return true;
}

std::optional<std::string> program_head_problem(const ProgramHead& head, const std::optional<ElfTarget>& own) {
  switch (head.kind) {
    case ProgramHead::Kind::other:
      return std::string(
          "it starts with neither \"#!\" nor an ELF header, so execve fails with \"Exec format error\"; make its "
          "first line \"#!\" and the interpreter's absolute path (such as #!/bin/sh), or give the interpreter as "
          "PROGRAM and the file as its argument");
    case ProgramHead::Kind::script:
      if (head.shebang.interpreter.empty()) {
        return std::string(
            "its \"#!\" line names no interpreter; write the interpreter's absolute path after \"#!\" (such as "
            "#!/bin/sh)");
      }
      return std::nullopt;
    case ProgramHead::Kind::elf:
      break;
  }
  if (const std::string_view type = elf_type_name(head.elf_type); !type.empty()) {
    return "it is " + std::string(type) + ", not a program; link it into an executable";
  }
  if (own && !elf_runs_beside(head.elf, *own)) {
    return "it is an ELF program for " + elf_target_name(head.elf) + ", and this system runs " +
           elf_target_name(*own) + " programs; install the build for " + elf_target_name(*own);
  }
  return std::nullopt;
}

}  // namespace clusterd
