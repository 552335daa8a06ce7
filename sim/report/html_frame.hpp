// The timeline figure's geometry, shared by the rows (html_timeline.cpp) and the link utilisation
// chart under them (html_link_chart.cpp), so both sit on one time axis.
#pragma once

#include <string>

#include "tpsim/attribution.hpp"
#include "tpsim/report.hpp"

namespace tpsim {

// The picture's geometry: one bin per pixel column of the plot.
struct TimelineFrame {
  double label = 120, width = 1100, plot = 960, top = 30;
  int bins = 960;
  double origin = 0;             // s of the step where the plot starts (a zoomed decode step: the prefill's end)
  double makespan = 0, dt = 0;   // s plotted, s per bin
  double prefill_end = -1;       // inference: where the decode step starts; -1 for training
};

// The busiest link groups' utilisation over the step, a strip each, on the frame's time axis; one
// line saying so when the engine recorded no utilisation over time.
std::string link_chart(const RunResult& run, const Attribution& a, const TimelineFrame& f);

}  // namespace tpsim
