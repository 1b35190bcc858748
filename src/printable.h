// Text that others wrote (a control server's reply, a worker's STATUS=) made safe to show on a
// terminal: what could move the cursor, recolour, retitle or reorder what is shown appears
// escaped instead.
//
// Pure: no I/O. A terminal acts on C0 controls (ESC starts a sequence), DEL, the C1 controls
// (U+0080-U+009F; U+009B is a whole CSI), and displays right-to-left text reordered by the
// bidirectional marks, overrides and isolates, so that "txt.exe" may be shown as "exe.txt"
// (CVE-2021-42574). Everything else, other languages included, is shown as it is.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace clusterd {

// Whether the code point `code_point` is one that the text forms below show escaped: C0 controls,
// DEL, C1 controls, U+061C, U+200E, U+200F, U+2028, U+2029, U+202A-U+202E and U+2066-U+2069.
bool is_unsafe_code_point(char32_t code_point);

// `text` for a terminal: tab, newline and carriage return as \t, \n, \r; the other C0 controls
// and DEL as \xNN ("\x1b"); the unsafe code points from U+0080 as \uNNNN ("\u009b", "\u202e");
// a byte that is not part of valid UTF-8 as \xNN ("\xff"). A backslash is left as it is: the
// form only has to keep the terminal safe, not to be read back.
std::string printable(std::string_view text);

// `json` as one line of JSON that is safe on a terminal: nlohmann escapes the C0 controls;
// DEL and the unsafe code points from U+0080 are written as \u escapes too (valid JSON, the same
// value for any parser), and text that is not UTF-8 gets U+FFFD. Other non-ASCII stays readable.
std::string printable_json(const nlohmann::ordered_json& json);

}  // namespace clusterd
