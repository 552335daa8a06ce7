// Time axis ticks for the SVG figures: 1-2-5 steps, labels in one unit per axis.
#pragma once

#include <string>
#include <vector>

namespace tpsim {

struct Tick {
  double at = 0;        // s from the axis origin
  std::string label;    // "0", "0.5 s", "250 us"
};

// The smallest 1-2-5 x 10^k step giving at most `max_ticks` intervals over [0, span]
// (span 2.021 s, 8 ticks: 0.5 s). 0 when span <= 0.
double nice_step(double span, int max_ticks);

// Ticks at 0, step, 2 step, ... up to span, labelled in the unit of the largest tick
// (s, ms, us or ns) with as many decimals as the step needs: 0, 0.5 s, 1.0 s, 1.5 s, 2.0 s.
std::vector<Tick> time_ticks(double span, int max_ticks = 8);

}  // namespace tpsim
