// Text inside HTML and SVG (element content and quoted attributes): the four characters that could
// end one early, escaped. Shared by every HTML report tpsim writes.
#pragma once

#include <string>

namespace tpsim {

inline std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace tpsim
