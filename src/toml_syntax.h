// toml++'s syntax errors in an operator's words: what is wrong and how to write it instead
// ("a string must end on the line it starts on" rather than "unescaped control characters").
#pragma once

#include <string>
#include <string_view>

namespace clusterd {

// `description`: toml++'s ("Error while parsing string: unescaped control characters …");
// `text`: the whole file; `line` and `column` (1-based): where toml++ stopped. A description not
// recognised is returned without its "Error while parsing" prefix, or as it is.
std::string plain_syntax_error(std::string_view description, std::string_view text, int line, int column);

}  // namespace clusterd
