// The plan page's SVG pieces (plan_html.cpp, plan_charts.cpp): a chart's frame, linear axes on
// round steps (nice_step, as the timeline's) with k / M / G labels, and a unit for time.
#pragma once

#include <string>

namespace tpsim::plan_page {

constexpr double kWidth = 1100;   // px, as the run report's timeline

std::string escape(const std::string& s);

int decimals(double step);
std::string tick_text(double v, double step);

struct Unit {
  double scale;   // seconds per unit
  const char* name;
};
Unit time_unit(double max_s);

// A linear axis in display units (data / scale), its ends on whole steps.
struct Axis {
  double lo = 0, hi = 1, step = 1, scale = 1;
  std::string title;
  double frac(double data) const { return (data / scale - lo) / (hi - lo); }
};
Axis make_axis(double min_data, double max_data, double scale, bool from_zero, std::string title, int intervals = 5);

struct Frame {
  double left = 80, top = 34, width = kWidth - 80 - 30, height = 260;
  double bottom() const { return top + height; }
  double right() const { return left + width; }
};

std::string svg_open(const char* id, double height, const std::string& title);
std::string y_axis(const Frame& f, const Axis& a);
std::string x_axis(const Frame& f, const Axis& a);

}  // namespace tpsim::plan_page
