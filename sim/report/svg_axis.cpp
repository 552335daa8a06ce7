// Readable time ticks: a person reads "0.5 s, 1.0 s" at a glance, not "404.145 ms, 808.290 ms".
#include "report/svg_axis.hpp"

#include <cmath>
#include <fmt/format.h>

namespace tpsim {

double nice_step(double span, int max_ticks) {
  if (!(span > 0) || max_ticks < 1) return 0;
  const double raw = span / max_ticks;
  double decade = std::pow(10.0, std::floor(std::log10(raw)));
  for (;; decade *= 10)
    for (double m : {1.0, 2.0, 5.0})
      // The 1e-9 slack keeps float noise (0.30000000000000004 / 3) from skipping a step.
      if (m * decade >= raw * (1 - 1e-9)) return m * decade;
}

std::vector<Tick> time_ticks(double span, int max_ticks) {
  std::vector<Tick> ticks;
  const double step = nice_step(span, max_ticks);
  if (step <= 0) return ticks;
  const int count = static_cast<int>(std::floor(span / step * (1 + 1e-9)));
  const double largest = step * count;
  const auto [unit, name] = largest >= 1 ? std::pair{1.0, "s"}
                            : largest >= 1e-3 ? std::pair{1e-3, "ms"}
                            : largest >= 1e-6 ? std::pair{1e-6, "us"}
                                              : std::pair{1e-9, "ns"};
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step / unit) - 1e-9)));
  for (int k = 0; k <= count; ++k) {
    const double at = step * k;
    ticks.push_back({at, k == 0 ? std::string("0") : fmt::format("{:.{}f} {}", at / unit, decimals, name)});
  }
  return ticks;
}

}  // namespace tpsim
