// Judging a program by its first bytes: ELF targets, "#!" lines and binfmt_misc handlers.
#include "program_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace clusterd {
namespace {

constexpr ElfTarget x86_64{2, 1, 62};
constexpr ElfTarget aarch64{2, 1, 183};

// A 64-byte ELF header: magic, class, byte order, version, then e_type and e_machine; the rest zero.
std::string elf_head(unsigned elf_class, unsigned byte_order, unsigned type, unsigned machine) {
  std::string head = "\x7f" "ELF";
  head += static_cast<char>(elf_class);
  head += static_cast<char>(byte_order);
  head += '\1';  // EI_VERSION
  head += std::string(9, '\0');
  const auto put = [&](unsigned value) {
    const char low = static_cast<char>(value & 0xff);
    const char high = static_cast<char>(value >> 8);
    head += byte_order == 2 ? std::string{high, low} : std::string{low, high};
  };
  put(type);
  put(machine);
  return head + std::string(44, '\0');
}

TEST(ProgramFormat, ReadsTheTargetOfAnElfHeaderInItsByteOrder) {
  const ProgramHead little = read_program_head(elf_head(2, 1, 3, 183));
  EXPECT_EQ(little.kind, ProgramHead::Kind::elf);
  EXPECT_EQ(little.elf, aarch64);
  EXPECT_EQ(little.elf_type, 3u);
  const ProgramHead big = read_program_head(elf_head(2, 2, 2, 22));
  EXPECT_EQ(big.elf, (ElfTarget{2, 2, 22}));
  EXPECT_EQ(big.elf_type, 2u);
}

TEST(ProgramFormat, AnElfMagicTooShortToHoldItsMachineIsNoElf) {
  EXPECT_EQ(read_program_head(std::string("\x7f" "ELF\2\1", 6)).kind, ProgramHead::Kind::other);
}

TEST(ProgramFormat, SplitsAShebangLineAsTheKernelDoes) {
  const ProgramHead head = read_program_head("#! /usr/bin/env  python3 -u \t\nprint(1)\n");
  EXPECT_EQ(head.kind, ProgramHead::Kind::script);
  EXPECT_EQ(head.shebang.interpreter, "/usr/bin/env");
  EXPECT_EQ(head.shebang.argument, "python3 -u");
  const ProgramHead bare = read_program_head("#!/bin/sh");
  EXPECT_EQ(bare.shebang.interpreter, "/bin/sh");
  EXPECT_EQ(bare.shebang.argument, "");
}

TEST(ProgramFormat, TextWithoutAShebangIsNotAnExecutableFormat) {
  const auto problem = program_head_problem(read_program_head("echo hello\n"), x86_64);
  EXPECT_EQ(problem,
            "it starts with neither \"#!\" nor an ELF header, so execve fails with \"Exec format error\"; make its "
            "first line \"#!\" and the interpreter's absolute path (such as #!/bin/sh), or give the interpreter as "
            "PROGRAM and the file as its argument");
  EXPECT_EQ(program_head_problem(read_program_head(""), x86_64), problem);
}

TEST(ProgramFormat, AShebangWithoutAnInterpreterIsAProblem) {
  EXPECT_EQ(program_head_problem(read_program_head("#!  \nexit 0\n"), x86_64),
            "its \"#!\" line names no interpreter; write the interpreter's absolute path after \"#!\" (such as "
            "#!/bin/sh)");
  EXPECT_EQ(program_head_problem(read_program_head("#!/bin/sh\n"), x86_64), std::nullopt);
}

TEST(ProgramFormat, AnElfForAnotherMachineNamesBothTargetsAndTheFix) {
  EXPECT_EQ(program_head_problem(read_program_head(elf_head(2, 1, 3, 183)), x86_64),
            "it is an ELF program for AArch64 (64-bit), and this system runs x86-64 (64-bit) programs; install the "
            "build for x86-64 (64-bit)");
  EXPECT_EQ(program_head_problem(read_program_head(elf_head(2, 1, 2, 62)), aarch64),
            "it is an ELF program for x86-64 (64-bit), and this system runs AArch64 (64-bit) programs; install the "
            "build for AArch64 (64-bit)");
}

TEST(ProgramFormat, AnElfForThisMachineRunsAndAnUnknownOwnTargetRefusesNoElf) {
  EXPECT_EQ(program_head_problem(read_program_head(elf_head(2, 1, 3, 62)), x86_64), std::nullopt);
  EXPECT_EQ(program_head_problem(read_program_head(elf_head(2, 1, 3, 183)), std::nullopt), std::nullopt);
}

TEST(ProgramFormat, AnElfObjectOrCoreIsNoProgramWhateverItsMachine) {
  EXPECT_EQ(program_head_problem(read_program_head(elf_head(2, 1, 1, 62)), x86_64),
            "it is an ELF relocatable object (e_type 1, a .o file), not a program; link it into an executable");
  EXPECT_EQ(program_head_problem(read_program_head(elf_head(2, 1, 4, 62)), x86_64),
            "it is an ELF core dump (e_type 4), not a program; link it into an executable");
}

TEST(ProgramFormat, SixtyFourBitKernelsAreGivenTheirCommonThirtyTwoBitCompanions) {
  EXPECT_TRUE(elf_runs_beside({1, 1, 3}, x86_64));     // i386 (IA32 emulation)
  EXPECT_TRUE(elf_runs_beside({1, 1, 62}, x86_64));    // x32
  EXPECT_TRUE(elf_runs_beside({1, 1, 40}, aarch64));   // AArch32
  EXPECT_FALSE(elf_runs_beside({2, 1, 3}, x86_64));    // no 64-bit i386
  EXPECT_FALSE(elf_runs_beside({1, 1, 40}, x86_64));
  EXPECT_FALSE(elf_runs_beside({2, 2, 183}, aarch64));  // big-endian on a little-endian system
}

TEST(ProgramFormat, NamesTargetsWithClassAndOnlyABigEndianByteOrder) {
  EXPECT_EQ(elf_target_name({1, 1, 3}), "i386 (32-bit)");
  EXPECT_EQ(elf_target_name({2, 2, 22}), "S/390 (64-bit, big-endian)");
  EXPECT_EQ(elf_target_name({1, 1, 999}), "machine 999 (32-bit)");
}

TEST(ProgramFormat, ABinfmtMiscHandlerMatchesItsMagicUnderItsMask) {
  const std::string qemu_aarch64 =
      "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\n"
      "magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
  EXPECT_TRUE(binfmt_handler_runs(qemu_aarch64, "/srv/app", elf_head(2, 1, 2, 183)));
  EXPECT_TRUE(binfmt_handler_runs(qemu_aarch64, "/srv/app", elf_head(2, 1, 3, 183)));  // e_type masked 2/3
  EXPECT_FALSE(binfmt_handler_runs(qemu_aarch64, "/srv/app", elf_head(2, 1, 2, 62)));
  EXPECT_FALSE(binfmt_handler_runs("disabled" + qemu_aarch64.substr(7), "/srv/app", elf_head(2, 1, 2, 183)));
  EXPECT_FALSE(binfmt_handler_runs(qemu_aarch64, "/srv/app", "\x7f" "ELF"));  // shorter than the magic
}

TEST(ProgramFormat, ABinfmtMiscHandlerMatchesItsExtensionAfterTheLastDot) {
  const std::string jar = "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n";
  EXPECT_TRUE(binfmt_handler_runs(jar, "/srv/app.jar", "PK\3\4"));
  EXPECT_FALSE(binfmt_handler_runs(jar, "/srv/app.jar.bak", "PK\3\4"));
  EXPECT_FALSE(binfmt_handler_runs(jar, "/srv/app", "PK\3\4"));
}

TEST(ProgramFormat, AMagicAtAnOffsetIsComparedThere) {
  const std::string entry = "enabled\ninterpreter /x\nflags: \noffset 2\nmagic 4142\n";
  EXPECT_TRUE(binfmt_handler_runs(entry, "f", "..AB"));
  EXPECT_FALSE(binfmt_handler_runs(entry, "f", "AB.."));
}

}  // namespace
}  // namespace clusterd
