// Time axis ticks: 1-2-5 steps and one unit per axis, against hand-worked values.
#include <doctest/doctest.h>

#include "relative.hpp"

#include "report/svg_axis.hpp"

using namespace tpsim;

namespace {

std::vector<std::string> labels(const std::vector<Tick>& ticks) {
  std::vector<std::string> out;
  for (const auto& t : ticks) out.push_back(t.label);
  return out;
}

}  // namespace

TEST_CASE("the step is the smallest 1-2-5 x 10^k giving at most max_ticks intervals") {
  CHECK(nice_step(2.021, 8) == rel(0.5));     // 2.021 / 8 = 0.253 -> 0.5 (0.2 would give 10)
  CHECK(nice_step(4e-3, 10) == rel(0.5e-3));  // 0.4 ms -> 0.5 ms
  CHECK(nice_step(88.1e-3, 10) == rel(10e-3));   // 8.81 ms -> 10 ms
  CHECK(nice_step(0.3, 3) == rel(0.1));       // exactly 0.1, despite 0.3 / 3 = 0.09999999999999999
  CHECK(nice_step(150e-6, 10) == rel(20e-6)); // 15 us -> 20 us
  CHECK(nice_step(0, 10) == 0);
}

TEST_CASE("ticks from 0 up to the span, labelled in the largest tick's unit") {
  // The 70B pipeline step: 2.021 s -> 0, 0.5, 1.0, 1.5, 2.0 s.
  CHECK(labels(time_ticks(2.021, 8)) == std::vector<std::string>{"0", "0.5 s", "1.0 s", "1.5 s", "2.0 s"});
  // Prefill + a decode step, 88.1 ms: every 10 ms, whole milliseconds.
  const auto ms = time_ticks(88.1e-3, 10);
  REQUIRE(ms.size() == 9);
  CHECK(ms[1].label == "10 ms");
  CHECK(ms[8].label == "80 ms");
  CHECK(ms[8].at == rel(80e-3));
  // Below a second the unit is ms: 0.3 s in 3 steps is 100, 200, 300 ms.
  CHECK(labels(time_ticks(0.3, 3)) == std::vector<std::string>{"0", "100 ms", "200 ms", "300 ms"});
  // 150 us: every 20 us, up to 140 us.
  const auto us = time_ticks(150e-6, 10);
  CHECK(us.back().label == "140 us");
  CHECK(us.size() == 8);
  CHECK(time_ticks(0, 10).empty());
}
