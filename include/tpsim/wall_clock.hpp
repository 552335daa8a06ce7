// Wall time and resident memory between the phases of a run, for the debug log (-vv): where a
// slow or large run spends its time and memory.
#pragma once

#include <chrono>
#include <cstdio>

namespace tpsim {

class WallClock {
 public:
  // Seconds since construction or the previous lap.
  double lap() const {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return seconds;
  }

 private:
  mutable std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

// Resident set size of this process in MiB (Linux /proc; 0 where it cannot be read).
inline double resident_mib() {
  long pages = 0, resident = 0;
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  const int got = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return got == 2 ? double(resident) * 4096.0 / (1024.0 * 1024.0) : 0;
}

}  // namespace tpsim
