// Shows text that others wrote with terminal controls and bidirectional marks escaped.
#include "printable.h"

#include <cstdint>
#include <optional>

#include <fmt/format.h>

namespace clusterd {
namespace {

struct Decoded {
  char32_t code_point = 0;
  std::size_t length = 0;
};

// The code point that starts at text[at], if the bytes there are valid UTF-8 (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF); nullopt for a byte that is not.
std::optional<Decoded> decode(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) {
    return Decoded{lead, 1};
  }
  std::size_t length = 0;
  char32_t code_point = 0;
  char32_t minimum = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    code_point = lead & 0x1F;
    minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    code_point = lead & 0x0F;
    minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    code_point = lead & 0x07;
    minimum = 0x10000;
  } else {
    return std::nullopt;
  }
  if (at + length > text.size()) {
    return std::nullopt;
  }
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xC0) != 0x80) {
      return std::nullopt;
    }
    code_point = (code_point << 6) | (byte(at + i) & 0x3F);
  }
  if (code_point < minimum || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return std::nullopt;
  }
  return Decoded{code_point, length};
}

}  // namespace

bool is_unsafe_code_point(char32_t code_point) {
  if (code_point < 0x20 || (code_point >= 0x7F && code_point <= 0x9F)) {
    return true;  // C0, DEL, C1
  }
  switch (code_point) {
    case 0x061C:  // ARABIC LETTER MARK
    case 0x200E:  // LEFT-TO-RIGHT MARK
    case 0x200F:  // RIGHT-TO-LEFT MARK
    case 0x2028:  // LINE SEPARATOR: some programs break the line there
    case 0x2029:  // PARAGRAPH SEPARATOR
      return true;
    default:
      break;
  }
  // LRE, RLE, PDF, LRO, RLO; LRI, RLI, FSI, PDI.
  return (code_point >= 0x202A && code_point <= 0x202E) || (code_point >= 0x2066 && code_point <= 0x2069);
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  while (at < text.size()) {
    const auto decoded = decode(text, at);
    if (!decoded) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(text[at]));
      ++at;
      continue;
    }
    const char32_t code_point = decoded->code_point;
    if (!is_unsafe_code_point(code_point)) {
      out.append(text.substr(at, decoded->length));
    } else if (code_point == '\t') {
      out += "\\t";
    } else if (code_point == '\n') {
      out += "\\n";
    } else if (code_point == '\r') {
      out += "\\r";
    } else if (code_point < 0x80) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(code_point));
    } else {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(code_point));
    }
    at += decoded->length;
  }
  return out;
}

std::string printable_json(const nlohmann::ordered_json& json) {
  // dump() escapes every C0 control and '"' and '\\', and leaves the rest of a string's UTF-8 as
  // it is; outside strings JSON is ASCII. So each unsafe code point left in the text is inside a
  // string, where its \u escape means the same character.
  const std::string dumped = json.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  std::string out;
  out.reserve(dumped.size());
  std::size_t at = 0;
  while (at < dumped.size()) {
    const auto decoded = decode(dumped, at);
    // dump() with `replace` writes valid UTF-8 only; should a byte that is not get through, it
    // is inside a string too, and becomes U+FFFD as the others did.
    const std::size_t length = decoded ? decoded->length : 1;
    if (!decoded) {
      out += "\\ufffd";
    } else if (is_unsafe_code_point(decoded->code_point)) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(decoded->code_point));
    } else {
      out.append(dumped, at, length);
    }
    at += length;
  }
  return out;
}

}  // namespace clusterd
