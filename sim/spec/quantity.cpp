// parse_quantity: "450 GB/s", "400 Gb/s" (bits), "1.5 us", "80 GiB", "989 TFLOP/s", "82%"; a bare
// number only for plain numbers (and 0 for any kind), and only inside each kind's plausible range. Decimal prefixes are powers of 1000, binary ones (Ki, Mi, Gi, Ti)
// powers of 1024; a lower-case 'b' means bits, so "400 Gb/s" is 50e9 B/s.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <stdexcept>

#include "tpsim/spec.hpp"

namespace tpsim {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Multiplier of a decimal or binary prefix ("", "k", "K", "M", "G", "T", "P", "Ki", ... "Ti").
std::optional<double> prefix_scale(const std::string& p) {
  static const std::map<std::string, double> scale = {
      {"", 1.0},        {"k", 1e3},           {"K", 1e3},           {"M", 1e6},
      {"G", 1e9},       {"T", 1e12},          {"P", 1e15},          {"Ki", 1024.0},
      {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0}};
  auto it = scale.find(p);
  if (it == scale.end()) return std::nullopt;
  return it->second;
}

// Splits "GB/s" into prefix "G" and base "B/s" for the bases of one unit kind.
std::optional<double> unit_scale(const std::string& unit, const std::string& kind) {
  struct Base { const char* text; double factor; };
  static const std::map<std::string, std::vector<Base>> bases = {
      {"bandwidth", {{"B/s", 1.0}, {"Bps", 1.0}, {"b/s", 0.125}, {"bps", 0.125}, {"bit/s", 0.125}}},
      {"bytes", {{"B", 1.0}, {"bytes", 1.0}}},
      {"flops", {{"FLOP/s", 1.0}, {"FLOPS", 1.0}, {"FLOPs", 1.0}, {"flop/s", 1.0}}},
  };
  if (kind == "time") {
    static const std::map<std::string, double> time = {
        {"s", 1.0}, {"ms", 1e-3}, {"us", 1e-6}, {"\xC2\xB5s", 1e-6}, {"ns", 1e-9}};
    auto it = time.find(unit);
    if (it == time.end()) return std::nullopt;
    return it->second;
  }
  auto kb = bases.find(kind);
  if (kb == bases.end()) return std::nullopt;
  for (const Base& b : kb->second) {
    const std::string base = b.text;
    if (unit.size() < base.size() || unit.compare(unit.size() - base.size(), base.size(), base) != 0) continue;
    if (auto p = prefix_scale(unit.substr(0, unit.size() - base.size()))) return *p * b.factor;
  }
  return std::nullopt;
}

// The magnitudes a nonzero quantity of each kind may have: far past any real GPU, link or cluster,
// and inside what the engine can time (SimGrid aborts on an infinite rate and deadlocks on a
// denormal one). The bytes cover a whole cluster's memory; times run from a picosecond to 100 days.
struct Range {
  double lo, hi;
  const char* shown;
};
std::optional<Range> plausible(const std::string& kind) {
  if (kind == "bandwidth") return Range{1e3, 1e16, "1 kB/s to 10 PB/s"};
  if (kind == "time") return Range{1e-12, 1e7, "1 ps to 1e7 s"};
  if (kind == "bytes") return Range{1.0, 1e18, "1 B to 1 EB"};
  if (kind == "flops") return Range{1e6, 1e19, "1 MFLOP/s to 10 EFLOP/s"};
  return std::nullopt;
}

std::string noun(const std::string& kind) {
  return kind == "bytes" ? "size" : kind == "flops" ? "compute rate" : kind;
}

// `value` (base units) inside the kind's plausible range, or out_of_range saying which.
double checked(double value, const std::string& text, const std::string& kind) {
  const double size = std::fabs(value);
  if (!std::isfinite(value)) throw std::out_of_range("'" + text + "' is too large for a " + noun(kind));
  if (auto r = plausible(kind); r && size != 0 && (size < r->lo || size > r->hi))
    throw std::out_of_range("'" + text + "' is outside the plausible range of a " + noun(kind) + " (" + r->shown + ")");
  return value;
}

}  // namespace

double parse_quantity(const std::string& text, const std::string& unit_kind) {
  static const char* kinds[] = {"bandwidth", "time", "bytes", "flops", "number"};
  if (std::find(std::begin(kinds), std::end(kinds), unit_kind) == std::end(kinds))
    throw std::invalid_argument("unknown unit kind '" + unit_kind + "'");
  const std::string s = trim(text);
  double value = 0;
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  if (begin != end && *begin == '+') ++begin;   // from_chars rejects a leading '+'
  auto [stop, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || stop == begin || !std::isfinite(value))
    throw std::invalid_argument("'" + text + "' does not start with a number");
  const std::string unit = trim(std::string(stop, end));
  if (unit_kind == "number") {
    if (unit.empty()) return value;
    if (unit == "%") return value / 100.0;
    throw std::invalid_argument("'" + text + "' should be a plain number");
  }
  // A bare number would be read in base units (450 -> 450 B/s): only 0 means the same in any unit.
  if (unit.empty()) {
    if (value == 0) return 0;
    throw std::out_of_range("'" + text + "' has no unit (a " + noun(unit_kind) + " needs one; 0 is the only bare value)");
  }
  if (auto scale = unit_scale(unit, unit_kind)) return checked(value * *scale, text, unit_kind);
  throw std::invalid_argument("'" + unit + "' is not a " + unit_kind + " unit");
}

}  // namespace tpsim
