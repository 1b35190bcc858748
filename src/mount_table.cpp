// Which file system a path is on (mount_table.h).
#include "mount_table.h"

#include <stdlib.h>

#include <array>
#include <memory>
#include <vector>

#include "text_file.h"

namespace clusterd {
namespace {

// mountinfo escapes space, tab, newline and backslash in paths as \ooo (octal).
std::string unescape(std::string_view field) {
  std::string text;
  for (std::size_t at = 0; at < field.size(); ++at) {
    if (field[at] == '\\' && at + 3 < field.size()) {
      const std::string_view digits = field.substr(at + 1, 3);
      if (digits.find_first_not_of("01234567") == std::string_view::npos) {
        text += static_cast<char>((digits[0] - '0') * 64 + (digits[1] - '0') * 8 + (digits[2] - '0'));
        at += 3;
        continue;
      }
    }
    text += field[at];
  }
  return text;
}

// `mount_point` contains `path`: equal, or a parent directory of it.
bool contains(std::string_view mount_point, std::string_view path) {
  if (!path.starts_with(mount_point)) {
    return false;
  }
  return mount_point == "/" || path.size() == mount_point.size() || path[mount_point.size()] == '/';
}

std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t at = 0;
  while (at < line.size()) {
    const std::size_t end = line.find(' ', at);
    fields.push_back(line.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
    if (end == std::string_view::npos) {
      break;
    }
    at = end + 1;
  }
  return fields;
}

std::optional<std::string> resolved(const std::string& path) {
  const std::unique_ptr<char, decltype(&::free)> real(::realpath(path.c_str(), nullptr), ::free);
  return real ? std::optional<std::string>(real.get()) : std::nullopt;
}

}  // namespace

std::optional<std::string> file_system_type_of(std::string_view mountinfo, std::string_view absolute_path) {
  std::optional<std::string> type;
  std::size_t longest = 0;
  std::size_t at = 0;
  while (at < mountinfo.size()) {
    const std::size_t end = mountinfo.find('\n', at);
    const std::string_view line = mountinfo.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    at = end == std::string_view::npos ? mountinfo.size() : end + 1;
    // "36 35 98:0 /root /mnt rw,noatime master:1 - ext4 /dev/sda1 rw": the mount point is the
    // fifth field, the type the first after the lone "-" that ends the optional fields.
    const std::vector<std::string_view> fields = fields_of(line);
    std::size_t separator = 6;
    while (separator < fields.size() && fields[separator] != "-") {
      ++separator;
    }
    if (fields.size() < 5 || separator + 1 >= fields.size()) {
      continue;
    }
    const std::string mount_point = unescape(fields[4]);
    // >=: a later mount on the same point hides the earlier one.
    if (contains(mount_point, absolute_path) && mount_point.size() >= longest) {
      longest = mount_point.size();
      type = std::string(fields[separator + 1]);
    }
  }
  return type;
}

bool file_system_may_hang(std::string_view type) {
  constexpr std::array<std::string_view, 12> network = {"nfs",  "nfs4", "cifs", "smb3", "smbfs", "ceph",
                                                         "9p",   "afs",  "coda", "lustre", "glusterfs", "ncpfs"};
  for (const std::string_view name : network) {
    if (type == name) {
      return true;
    }
  }
  return type == "fuse" || type.starts_with("fuse.");
}

bool launch_may_hang(const std::string& executable, const std::string& directory) {
  const auto mountinfo = read_text_file("/proc/self/mountinfo");
  if (!mountinfo) {
    return true;
  }
  std::vector<std::string> paths = {executable};
  if (!directory.empty()) {
    paths.push_back(directory);
  }
  for (const std::string& path : paths) {
    const auto real = resolved(path);
    const auto type = real ? file_system_type_of(*mountinfo, *real) : std::nullopt;
    if (!type || file_system_may_hang(*type)) {
      return true;
    }
  }
  return false;
}

}  // namespace clusterd
