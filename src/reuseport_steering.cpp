// The reuseport program, written as eBPF instructions (it is 31 of them: no compiler or loader
// library for that), its maps, and the minimal map changes when the targets change.
#include "reuseport_steering.h"

#include <linux/bpf.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <optional>

#include "errno_text.h"

namespace clusterd {
namespace {

long bpf(int command, bpf_attr& attr) { return ::syscall(SYS_bpf, command, &attr, sizeof(attr)); }

// The few instruction forms the program uses (the kernel's own macros are not in its uapi).
constexpr bpf_insn instruction(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t offset,
                               std::int32_t immediate) {
  bpf_insn insn{};
  insn.code = code;
  insn.dst_reg = dst & 0xf;
  insn.src_reg = src & 0xf;
  insn.off = offset;
  insn.imm = immediate;
  return insn;
}
constexpr bpf_insn move_register(std::uint8_t dst, std::uint8_t src) {
  return instruction(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0);
}
constexpr bpf_insn move_immediate(std::uint8_t dst, std::int32_t value) {
  return instruction(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, value);
}
constexpr bpf_insn add_immediate(std::uint8_t dst, std::int32_t value) {
  return instruction(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, value);
}
constexpr bpf_insn store_word(std::uint8_t base, std::int16_t offset, std::int32_t value) {
  return instruction(BPF_ST | BPF_MEM | BPF_W, base, 0, offset, value);
}
constexpr bpf_insn store_word_register(std::uint8_t base, std::int16_t offset, std::uint8_t src) {
  return instruction(BPF_STX | BPF_MEM | BPF_W, base, src, offset, 0);
}
constexpr bpf_insn load_word(std::uint8_t dst, std::uint8_t base, std::int16_t offset) {
  return instruction(BPF_LDX | BPF_MEM | BPF_W, dst, base, offset, 0);
}
constexpr bpf_insn load_double_word(std::uint8_t dst, std::uint8_t base, std::int16_t offset) {
  return instruction(BPF_LDX | BPF_MEM | BPF_DW, dst, base, offset, 0);
}
// src = fetch-and-add(*(u32*)(base + offset), src), atomically across CPUs.
constexpr bpf_insn fetch_add_word(std::uint8_t base, std::int16_t offset, std::uint8_t src) {
  return instruction(BPF_STX | BPF_ATOMIC | BPF_W, base, src, offset, BPF_ADD | BPF_FETCH);
}
constexpr bpf_insn modulo_word_register(std::uint8_t dst, std::uint8_t src) {
  return instruction(BPF_ALU | BPF_MOD | BPF_X, dst, src, 0, 0);
}
constexpr bpf_insn jump_if_zero(std::uint8_t reg, std::int16_t skip) {
  return instruction(BPF_JMP | BPF_JEQ | BPF_K, reg, 0, skip, 0);
}
constexpr bpf_insn call(std::int32_t helper) { return instruction(BPF_JMP | BPF_CALL, 0, 0, 0, helper); }
constexpr bpf_insn exit_program() { return instruction(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }
// A 64-bit immediate load of a map, by its fd: two instructions.
std::array<bpf_insn, 2> load_map(std::uint8_t dst, int map_fd) {
  return {instruction(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, map_fd), instruction(0, 0, 0, 0, 0)};
}

constexpr std::uint32_t turn_key = 0;
constexpr std::uint32_t count_key = 1;

// r6 = ctx; count = state[1]; if none or 0: pass; turn = fetch_add(state[0], 1);
// key = turn % count; bpf_sk_select_reuseport(ctx, sockets, &key, 0); return SK_PASS.
// SK_PASS without a selection (no target, or the position's socket is gone) lets the kernel
// hash over the group.
std::vector<bpf_insn> program(int state_fd, int sockets_fd) {
  std::vector<bpf_insn> code;
  const auto add = [&](bpf_insn insn) { code.push_back(insn); };
  const auto add_map = [&](std::uint8_t dst, int fd) {
    for (const bpf_insn& insn : load_map(dst, fd)) {
      code.push_back(insn);
    }
  };
  const auto lookup_state = [&](std::uint32_t key) {
    add(store_word(BPF_REG_10, -4, static_cast<std::int32_t>(key)));
    add(move_register(BPF_REG_2, BPF_REG_10));
    add(add_immediate(BPF_REG_2, -4));
    add_map(BPF_REG_1, state_fd);
    add(call(BPF_FUNC_map_lookup_elem));
  };
  std::vector<std::size_t> jumps_to_pass;
  const auto jump_to_pass_if_zero = [&](std::uint8_t reg) {
    jumps_to_pass.push_back(code.size());
    add(jump_if_zero(reg, 0));
  };

  add(move_register(BPF_REG_6, BPF_REG_1));
  // Unused, but the verifier refuses the field before Linux 5.14, where an SK_REUSEPORT program
  // cannot migrate: such a kernel gets no steering rather than steering that resets queues.
  add(load_double_word(BPF_REG_2, BPF_REG_6, static_cast<std::int16_t>(offsetof(sk_reuseport_md, migrating_sk))));
  lookup_state(count_key);
  jump_to_pass_if_zero(BPF_REG_0);
  add(load_word(BPF_REG_7, BPF_REG_0, 0));
  jump_to_pass_if_zero(BPF_REG_7);
  lookup_state(turn_key);
  jump_to_pass_if_zero(BPF_REG_0);
  add(move_immediate(BPF_REG_2, 1));
  add(fetch_add_word(BPF_REG_0, 0, BPF_REG_2));
  add(modulo_word_register(BPF_REG_2, BPF_REG_7));
  add(store_word_register(BPF_REG_10, -8, BPF_REG_2));
  add(move_register(BPF_REG_1, BPF_REG_6));
  add_map(BPF_REG_2, sockets_fd);
  add(move_register(BPF_REG_3, BPF_REG_10));
  add(add_immediate(BPF_REG_3, -8));
  add(move_immediate(BPF_REG_4, 0));
  add(call(BPF_FUNC_sk_select_reuseport));
  const std::size_t pass = code.size();
  add(move_immediate(BPF_REG_0, SK_PASS));
  add(exit_program());
  for (const std::size_t jump : jumps_to_pass) {
    code[jump].off = static_cast<std::int16_t>(pass - jump - 1);
  }
  return code;
}

tl::expected<Fd, std::string> create_map(bpf_map_type type, std::uint32_t value_size, std::uint32_t entries,
                                         const char* what) {
  bpf_attr attr{};
  attr.map_type = type;
  attr.key_size = sizeof(std::uint32_t);
  attr.value_size = value_size;
  attr.max_entries = entries;
  attr.map_flags = 0;
  Fd map(static_cast<int>(bpf(BPF_MAP_CREATE, attr)));
  if (!map) {
    return tl::make_unexpected(std::string("cannot create the ") + what + " map (bpf BPF_MAP_CREATE): " +
                               errno_text(errno));
  }
  return map;
}

bool update(int map_fd, std::uint32_t key, const void* value) {
  bpf_attr attr{};
  attr.map_fd = static_cast<std::uint32_t>(map_fd);
  attr.key = reinterpret_cast<std::uint64_t>(&key);
  attr.value = reinterpret_cast<std::uint64_t>(value);
  attr.flags = BPF_ANY;
  return bpf(BPF_MAP_UPDATE_ELEM, attr) == 0;
}

void erase(int map_fd, std::uint32_t key) {
  bpf_attr attr{};
  attr.map_fd = static_cast<std::uint32_t>(map_fd);
  attr.key = reinterpret_cast<std::uint64_t>(&key);
  bpf(BPF_MAP_DELETE_ELEM, attr);  // ENOENT when the kernel dropped it already
}

}  // namespace

tl::expected<ReuseportSteering, std::string> ReuseportSteering::create(int capacity) {
  auto state = create_map(BPF_MAP_TYPE_ARRAY, sizeof(std::uint32_t), 2, "steering state");
  if (!state) {
    return tl::make_unexpected(state.error());
  }
  auto sockets = create_map(BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, sizeof(std::uint64_t),
                            static_cast<std::uint32_t>(std::max(capacity, 1)), "steering sockets");
  if (!sockets) {
    return tl::make_unexpected(sockets.error());
  }
  const std::vector<bpf_insn> code = program(state->get(), sockets->get());
  static constexpr char license[] = "GPL";
  bpf_attr attr{};
  attr.prog_type = BPF_PROG_TYPE_SK_REUSEPORT;
  attr.expected_attach_type = BPF_SK_REUSEPORT_SELECT_OR_MIGRATE;
  attr.insns = reinterpret_cast<std::uint64_t>(code.data());
  attr.insn_cnt = static_cast<std::uint32_t>(code.size());
  attr.license = reinterpret_cast<std::uint64_t>(license);
  std::strncpy(attr.prog_name, "clusterd_steer", sizeof(attr.prog_name) - 1);
  Fd loaded(static_cast<int>(bpf(BPF_PROG_LOAD, attr)));
  if (!loaded) {
    return tl::make_unexpected("cannot load the steering program (bpf BPF_PROG_LOAD): " + errno_text(errno));
  }
  return ReuseportSteering(std::move(*state), std::move(*sockets), std::move(loaded), std::max(capacity, 1));
}

ReuseportSteering::ReuseportSteering(Fd state, Fd sockets, Fd program, int capacity)
    : state_(std::move(state)),
      sockets_(std::move(sockets)),
      program_(std::move(program)),
      capacity_(capacity),
      position_of_(static_cast<std::size_t>(capacity), -1) {}

tl::expected<void, std::string> ReuseportSteering::attach(int socket_fd) const {
  const int program_fd = program_.get();
  if (::setsockopt(socket_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &program_fd, sizeof(program_fd)) != 0) {
    return tl::make_unexpected("cannot attach the steering program (SO_ATTACH_REUSEPORT_EBPF): " + errno_text(errno));
  }
  return {};
}

bool ReuseportSteering::put(std::size_t position, int fd) {
  const auto value = static_cast<std::uint64_t>(fd);
  return update(sockets_.get(), static_cast<std::uint32_t>(position), &value);
}

void ReuseportSteering::write_count() {
  const auto count = static_cast<std::uint32_t>(positions_.size());
  update(state_.get(), count_key, &count);
}

bool ReuseportSteering::add(int slot, int fd) {
  if (slot < 0 || slot >= capacity_) {
    return false;
  }
  if (const int position = position_of_[static_cast<std::size_t>(slot)]; position >= 0) {
    if (positions_[static_cast<std::size_t>(position)].fd == fd) {
      return true;
    }
    remove(slot);
  }
  if (!put(positions_.size(), fd)) {
    return false;
  }
  position_of_[static_cast<std::size_t>(slot)] = static_cast<int>(positions_.size());
  positions_.push_back({slot, fd});
  write_count();
  return true;
}

void ReuseportSteering::remove(int slot) {
  if (slot < 0 || slot >= capacity_ || position_of_[static_cast<std::size_t>(slot)] < 0) {
    return;
  }
  const auto position = static_cast<std::size_t>(position_of_[static_cast<std::size_t>(slot)]);
  position_of_[static_cast<std::size_t>(slot)] = -1;
  const std::size_t last = positions_.size() - 1;
  const SteeringTarget moved = positions_[last];
  positions_.pop_back();
  write_count();
  // A socket is in one position at a time (EBUSY), so it leaves the last before it moves.
  erase(sockets_.get(), static_cast<std::uint32_t>(last));
  if (position == last) {
    return;
  }
  positions_[position] = moved;
  position_of_[static_cast<std::size_t>(moved.slot)] = static_cast<int>(position);
  if (!put(position, moved.fd)) {
    // It stopped listening meanwhile: out as well, and the new last takes the place.
    erase(sockets_.get(), static_cast<std::uint32_t>(position));
    remove(moved.slot);
  }
}

ReuseportSteering::Handover ReuseportSteering::handover() const {
  Handover handed{state_.get(), sockets_.get(), program_.get(), capacity_, {}};
  for (const SteeringTarget& target : positions_) {
    handed.targets.emplace_back(target.slot, target.fd);
  }
  return handed;
}

ReuseportSteering ReuseportSteering::adopt(const Handover& handed) {
  ReuseportSteering steering(Fd(handed.state_fd), Fd(handed.sockets_fd), Fd(handed.program_fd),
                             std::max(handed.capacity, 1));
  for (const auto& [slot, fd] : handed.targets) {
    if (slot >= 0 && slot < steering.capacity_) {
      steering.position_of_[static_cast<std::size_t>(slot)] = static_cast<int>(steering.positions_.size());
      steering.positions_.push_back({slot, fd});
    }
  }
  return steering;
}

std::vector<int> ReuseportSteering::target_slots() const {
  std::vector<int> slots;
  for (const SteeringTarget& target : positions_) {
    slots.push_back(target.slot);
  }
  return slots;
}

const std::optional<std::string>& reuseport_steering_problem() {
  static const std::optional<std::string> problem = []() -> std::optional<std::string> {
    auto steering = ReuseportSteering::create(1);
    if (!steering) {
      return steering.error();
    }
    return std::nullopt;
  }();
  return problem;
}

ReusePort reuseport_in_effect(const ListenerConfig& config) {
  if (config.reuseport) {
    return *config.reuseport;
  }
  if (config.address.family == AddressFamily::unix_path || reuseport_steering_problem()) {
    return ReusePort::shared;
  }
  return ReusePort::per_slot;
}

}  // namespace clusterd
