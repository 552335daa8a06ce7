// One way to compare numbers in tests: relative. CHECK(x == rel(want, 0.01)) passes when
// |x - want| <= 0.01 * |want| (want == 0: x must be exactly 0). doctest's Approx is absolute for
// values below 1 unless .scale(0), so a "2%" check on seconds allowed 200%; this cannot. The
// default, 1e-9, is for values computed the same way twice; every wider tolerance is written at
// the check. tests/test_suite_rules.cpp fails on any Approx left in the suite.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <sstream>
#include <string>

struct Rel {
  double want = 0;
  double tolerance = 1e-9;   // relative
};

inline Rel rel(double want, double tolerance = 1e-9) { return Rel{want, tolerance}; }

inline bool operator==(double got, const Rel& r) {
  if (r.want == 0) return got == 0;
  return std::fabs(got - r.want) <= r.tolerance * std::fabs(r.want);
}
inline bool operator==(const Rel& r, double got) { return got == r; }
inline bool operator!=(double got, const Rel& r) { return !(got == r); }
inline bool operator!=(const Rel& r, double got) { return !(got == r); }

namespace doctest {
template <>
struct StringMaker<Rel> {
  static String convert(const Rel& r) {
    std::ostringstream s;
    s.precision(10);
    s << r.want << " (within " << r.tolerance * 100 << "% relative)";
    return String(s.str().c_str());
  }
};
}  // namespace doctest
