// Rewords toml++'s syntax errors for operators (toml_syntax.h).
#include "toml_syntax.h"

#include <cstddef>

namespace clusterd {
namespace {

// The 1-based line `line` of `text`, without its '\n'.
std::string_view line_of(std::string_view text, int line) {
  std::size_t start = 0;
  for (int at = 1; at < line; ++at) {
    const std::size_t newline = text.find('\n', start);
    if (newline == std::string_view::npos) {
      return {};
    }
    start = newline + 1;
  }
  const std::size_t end = text.find('\n', start);
  return text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

}  // namespace

std::string plain_syntax_error(std::string_view description, std::string_view text, int line, int column) {
  const std::string_view source_line = line_of(text, line);
  // toml++ reports where it stopped; past the line's last character means at its end.
  const bool at_line_end = column > static_cast<int>(source_line.size());
  if (contains(description, "control characters") && at_line_end) {
    return "unterminated string: a string must end with its closing quote on the line it starts on "
           "(a multi-line string is written between \"\"\" or ''')";
  }
  if (contains(description, "parsing array") && contains(description, "expected comma or closing ']'")) {
    return "unterminated array: expected ',' between the values or ']' after the last one";
  }
  if (contains(description, "table header") && contains(description, "expected ']'")) {
    return "unterminated section header: write it as [name] (or [[listen]]) on one line";
  }
  if (contains(description, "expected value, saw '\\n'") || (contains(description, "expected value") && at_line_end)) {
    return "a key without a value: write one after '=', such as \"text\", 4, true or [\"a\", \"b\"]";
  }
  if (contains(description, "could not determine value type")) {
    return "not a value: text must be quoted (\"text\"); numbers, true and false, and [arrays] are "
           "written without quotes";
  }
  if (contains(description, "cannot redefine existing")) {
    const std::size_t quote = description.rfind('\'', description.size() - 2);
    const std::string key = quote == std::string_view::npos
                                ? std::string("this key")
                                : "\"" + std::string(description.substr(quote + 1, description.size() - quote - 2)) + "\"";
    return key + " is set twice: keep one of the two";
  }
  constexpr std::string_view prefix = "Error while parsing ";
  if (description.starts_with(prefix)) {
    return "syntax error in " + std::string(description.substr(prefix.size()));
  }
  return std::string(description);
}

}  // namespace clusterd
