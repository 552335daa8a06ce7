// The plan page's axes and chart frames (plan_svg.hpp).
#include "plan/plan_svg.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "report/html_escape.hpp"
#include "report/svg_axis.hpp"

namespace tpsim::plan_page {

std::string escape(const std::string& s) { return html_escape(s); }

int decimals(double step) { return std::clamp(int(std::ceil(-std::log10(step) - 1e-9)), 0, 9); }

std::string tick_text(double v, double step) {
  const double div = step >= 1e9 ? 1e9 : step >= 1e6 ? 1e6 : step >= 1e3 ? 1e3 : 1;
  const char* suffix = div == 1e9 ? "G" : div == 1e6 ? "M" : div == 1e3 ? "k" : "";
  const double x = v / div;
  if (std::fabs(x) < step / div * 1e-9) return "0";   // not "0k", nor "-0"
  return fmt::format("{:.{}f}{}", x, decimals(step / div), suffix);
}

Unit time_unit(double max_s) {
  if (max_s >= 2 * 86400) return {86400, "days"};
  if (max_s >= 2 * 3600) return {3600, "hours"};
  if (max_s >= 120) return {60, "minutes"};
  if (max_s >= 1) return {1, "s"};
  if (max_s >= 1e-3) return {1e-3, "ms"};
  return {1e-6, "us"};
}


Axis make_axis(double min_data, double max_data, double scale, bool from_zero, std::string title, int intervals) {
  Axis a;
  a.scale = scale;
  a.title = std::move(title);
  double lo = min_data / scale, hi = max_data / scale;
  if (from_zero) lo = std::min(0.0, lo);
  if (!(hi > lo)) {   // one value: a window around it
    const double pad = lo != 0 ? std::fabs(lo) * 0.1 : 1;
    hi = lo + pad;
    if (!from_zero) lo -= pad;
  }
  a.step = nice_step(hi - lo, intervals);
  a.lo = std::floor(lo / a.step + 1e-9) * a.step;
  a.hi = std::ceil(hi / a.step - 1e-9) * a.step;
  if (a.hi <= a.lo) a.hi = a.lo + a.step;
  return a;
}


std::string svg_open(const char* id, double height, const std::string& title) {
  return fmt::format(R"(<svg id="{}" xmlns="http://www.w3.org/2000/svg" width="{:.0f}" height="{:.0f}" )"
                     R"(viewBox="0 0 {:.0f} {:.0f}" role="img"><title>{}</title>)"
                     "\n"
                     R"(<text class="p-title" x="10" y="18">{}</text>)"
                     "\n",
                     id, kWidth, height, kWidth, height, escape(title), escape(title));
}

std::string y_axis(const Frame& f, const Axis& a) {
  std::string svg;
  for (int k = 0; a.lo + k * a.step <= a.hi + a.step * 1e-9; ++k) {
    const double v = a.lo + k * a.step;
    const double y = f.bottom() - f.height * (v - a.lo) / (a.hi - a.lo);
    svg += fmt::format(R"(<line class="{}" x1="{:.2f}" y1="{:.2f}" x2="{:.2f}" y2="{:.2f}"/>)", k ? "grid" : "axis",
                       f.left, y, f.right(), y);
    svg += fmt::format(R"(<text class="tick" x="{:.2f}" y="{:.2f}" text-anchor="end">{}</text>)"
                       "\n",
                       f.left - 6, y + 3, tick_text(v, a.step));
  }
  svg += fmt::format(R"svg(<text class="p-axis-title" transform="translate({:.2f},{:.2f}) rotate(-90)" )svg"
                     R"(text-anchor="middle">{}</text>)"
                     "\n",
                     f.left - 58, f.top + f.height / 2, escape(a.title));
  return svg;
}

std::string x_axis(const Frame& f, const Axis& a) {
  std::string svg;
  for (int k = 0; a.lo + k * a.step <= a.hi + a.step * 1e-9; ++k) {
    const double v = a.lo + k * a.step;
    const double x = f.left + f.width * (v - a.lo) / (a.hi - a.lo);
    svg += fmt::format(R"(<line class="{}" x1="{:.2f}" y1="{:.2f}" x2="{:.2f}" y2="{:.2f}"/>)", k ? "grid" : "axis", x,
                       f.top, x, f.bottom());
    svg += fmt::format(R"(<text class="tick" x="{:.2f}" y="{:.2f}" text-anchor="middle">{}</text>)"
                       "\n",
                       x, f.bottom() + 14, tick_text(v, a.step));
  }
  svg += fmt::format(R"(<text class="p-axis-title" x="{:.2f}" y="{:.2f}" text-anchor="middle">{}</text>)"
                     "\n",
                     f.left + f.width / 2, f.bottom() + 32, escape(a.title));
  return svg;
}

}  // namespace tpsim::plan_page
