// Rules the suite keeps about itself. doctest's Approx compares |a - b| < e * (1 + max(|a|, |b|)):
// for values below 1 (seconds, fractions) a written "1%" is an absolute 0.01, so a check could
// pass at 200% error. Every comparison goes through relative.hpp instead; this fails on any
// Approx that comes back.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

TEST_CASE("no test compares with doctest's Approx") {
  const std::filesystem::path tests = std::filesystem::path(TPSIM_TEST_DATA).parent_path();
  const std::string banned = std::string("Appro") + "x(";   // spelled apart so this file passes itself
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(tests)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".cpp") continue;
    ++files;
    std::ifstream in(entry.path());
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      INFO(name << ":" << n << ": " << line);
      CHECK(line.find(banned) == std::string::npos);
    }
  }
  CHECK(files > 20);   // the folder was found and read
}
