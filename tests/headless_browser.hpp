// The HTML pages' tests: headless Chromium (Debian's `chromium`, which scripts/test.sh installs)
// loads a page with every host unresolvable, so nothing can be fetched, runs its scripts, and hands
// back the DOM (pages record what they drew in data-* attributes) and the browser's console log.
#pragma once

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

namespace tpsim_test {

// Occurrences of `what` in `text`.
inline int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// A shell command's standard output.
inline std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  pclose(p);
  return out;
}

// The browser's command, "" when none is installed.
inline std::string chromium() {
  for (const char* c : {"chromium", "chromium-browser", "google-chrome"})
    if (!run_command(std::string("command -v ") + c + " 2>/dev/null").empty()) return c;
  return "";
}

struct Rendered {
  std::string dom;   // --dump-dom: the DOM after the page's scripts ran
  std::string log;   // the browser's log on stderr, console messages included
};

// Loads `page` in headless Chromium offline; `scratch` holds the profile and the log.
inline Rendered render_page(const std::string& browser, const std::filesystem::path& scratch,
                            const std::filesystem::path& page) {
  std::filesystem::create_directories(scratch / "profile");
  const auto log = scratch / "browser-log.txt";
  const std::string cmd = browser +
                          " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                          " --disable-background-networking --disable-component-update --disable-sync"
                          " --host-resolver-rules='MAP * ~NOTFOUND' --enable-logging=stderr --v=0"
                          " --user-data-dir=" + (scratch / "profile").string() + " --dump-dom file://" +
                          page.string() + " 2>" + log.string();
  Rendered r;
  r.dom = run_command(cmd);
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  r.log = text.str();
  return r;
}

// The integer value of attribute `name` in `dom`, -1 when absent.
inline int attribute_of(const std::string& dom, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(dom, m, std::regex(name + "=\"([0-9]+)\""))) return -1;
  return std::stoi(m[1]);
}

}  // namespace tpsim_test
