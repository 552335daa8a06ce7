// What a benchmark ran on, printed above its table: timings mean little without the CPU, its
// vector width and the cores it had.
#pragma once

#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>

namespace tpsim::bench {

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  return "unknown CPU";
}

inline std::string machine_line() {
  const char* vectors = __builtin_cpu_supports("avx512f") ? "AVX-512" : __builtin_cpu_supports("avx2") ? "AVX2" : "SSE only";
  return fmt::format("machine: {}, {} hardware threads, {}", cpu_model(), std::thread::hardware_concurrency(), vectors);
}

}  // namespace tpsim::bench
