// Decodes the keys of `clusterd top` and keeps the state of its restart prompt.
#include "top_keys.h"

namespace clusterd {
namespace {

constexpr char ctrl_c = '\x03';
constexpr char ctrl_backslash = '\x1c';
constexpr char escape = '\x1b';
constexpr char backspace = '\x08';
constexpr char del = '\x7f';

// Slots go up to 4095: four digits; a fifth would name no slot.
constexpr std::size_t max_slot_digits = 4;

bool is_digit(char byte) { return byte >= '0' && byte <= '9'; }

}  // namespace

std::vector<TopAction> TopKeys::feed(std::string_view bytes) {
  std::vector<TopAction> actions;
  for (std::size_t at = 0; at < bytes.size(); ++at) {
    key(bytes[at], at + 1 == bytes.size(), actions);
  }
  return actions;
}

void TopKeys::key(char byte, bool last_in_read, std::vector<TopAction>& actions) {
  // A terminal writes a whole escape sequence at once, so an ESC that ends a read is the Esc key
  // itself. A sequence split across reads is rare; its rest would be taken as keys, and none of
  // its bytes ('[', 'A'…'D', '~', digits) outside the prompt is bound.
  if (escape_ == Escape::started) {
    escape_ = (byte == '[' || byte == 'O') ? Escape::sequence : Escape::none;  // else Alt+key: skipped
    return;
  }
  if (escape_ == Escape::sequence) {
    if (byte >= '\x40' && byte <= '\x7e') {  // the final byte of CSI and SS3 sequences
      escape_ = Escape::none;
    }
    return;
  }
  if (byte == ctrl_c || byte == ctrl_backslash) {
    actions.push_back(TopQuit{});
    return;
  }
  if (byte == escape) {
    if (last_in_read) {
      if (prompting_) {
        prompting_ = false;
        slot_.clear();
        actions.push_back(TopCancelled{});
      }
    } else {
      escape_ = Escape::started;
    }
    return;
  }
  if (prompting_) {
    prompt_key(byte, actions);
    return;
  }
  switch (byte) {
    case 'q':
    case 'Q':
      actions.push_back(TopQuit{});
      break;
    case 'r':
      actions.push_back(TopReload{});
      break;
    case '+':
    case '=':
      actions.push_back(TopScale{+1});
      break;
    case '-':
    case '_':
      actions.push_back(TopScale{-1});
      break;
    case 'R':
      prompting_ = true;
      slot_.clear();
      break;
    default:
      break;
  }
}

void TopKeys::prompt_key(char byte, std::vector<TopAction>& actions) {
  if (is_digit(byte)) {
    if (slot_.size() < max_slot_digits) {
      slot_ += byte;
    }
    return;
  }
  if (byte == backspace || byte == del) {
    if (!slot_.empty()) {
      slot_.pop_back();
    }
    return;
  }
  prompting_ = false;
  if ((byte == 'y' || byte == 'Y') && !slot_.empty()) {
    actions.push_back(TopRestart{std::stoi(slot_)});
  } else {
    actions.push_back(TopCancelled{});
  }
  slot_.clear();
}

std::string TopKeys::prompt() const {
  if (!prompting_) {
    return {};
  }
  return "restart slot: " + slot_ + "_  (type the slot, then y to restart it; Esc cancels)";
}

}  // namespace clusterd
