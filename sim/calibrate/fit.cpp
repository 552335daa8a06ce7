// The fit behind `tpsim calibrate`: a few physical constants of the topology, each searched within
// its physical range, so that the engine's times for the logs' collectives match the measured
// ones in log space (a 10% miss at 8 B weighs what a 10% miss at 8 GiB does). Coordinate descent:
// each constant in turn by a grid scan and a golden-section refinement around the best grid
// point, until a sweep moves none of them; deterministic, no randomness, no tolerance on the data.
#include <algorithm>
#include <cmath>
#include <functional>

#include <fmt/core.h>

#include "tpsim/calibrate.hpp"
#include "tpsim/engine.hpp"

namespace tpsim {

namespace {

// A constant the fit may move: its YAML key, where it lives, its physical range and how it is
// written (a plain fraction, or a time in us).
struct Knob {
  const char* key;
  double lower, upper;   // SI
  bool is_time;
  double tolerance;      // SI: the fit stops refining below this (the written precision)
  double& (*at)(Topology&);
};

const std::vector<Knob>& knobs() {
  static const std::vector<Knob> k = {
      {"collectives.launch_latency", 0, 500e-6, true, 0.01e-6, [](Topology& t) -> double& { return t.collectives.launch_latency; }},
      {"intra.efficiency", 0.05, 1, false, 1e-4, [](Topology& t) -> double& { return t.intra.efficiency; }},
      {"intra.latency", 0, 50e-6, true, 0.01e-6, [](Topology& t) -> double& { return t.intra.latency; }},
      {"nic.efficiency", 0.05, 1, false, 1e-4, [](Topology& t) -> double& { return t.nic.efficiency; }},
      {"nic.latency", 0, 100e-6, true, 0.01e-6, [](Topology& t) -> double& { return t.nic.latency; }},
  };
  return k;
}

const Knob& knob(const std::string& key) {
  for (const Knob& k : knobs())
    if (key == k.key) return k;
  std::string all;
  for (const Knob& k : knobs()) all += (all.empty() ? "" : ", ") + std::string(k.key);
  throw InputError("", 0, 0, "--fit", fmt::format("'{}' is not a constant calibrate fits; expected one of {}", key, all));
}

// The value as the YAML file will hold it, and that text read back: the topology the fit reports
// is then exactly the one `tpsim run -t calibrated.yaml` loads.
std::string yaml_text(const Knob& k, double v) {
  return k.is_time ? fmt::format("{:.2f} us", v * 1e6) : fmt::format("{:.4f}", v);
}
double as_written(const Knob& k, double v) { return parse_quantity(yaml_text(k, v), k.is_time ? "time" : "number"); }

bool spans_nodes(const Topology& t, const CalibrationSet& s) {
  for (int g : s.group)
    if (g / std::max(1, t.gpus_per_node) != s.group.front() / std::max(1, t.gpus_per_node)) return true;
  return false;
}

// Why a row is not fitted, or "".
std::vector<std::string> skip_reasons(const NcclTestsLog& log, double noise_margin) {
  std::vector<std::string> why(log.rows.size());
  for (size_t i = 0; i < log.rows.size(); ++i) {
    const NcclTestsRow& r = log.rows[i];
    if (r.bytes <= 0 || r.time_us <= 0) {
      why[i] = "0 B: nothing moves";
      continue;
    }
    // The engine's time never falls as the size grows; a row slower than a larger one measured
    // something besides the collective (a warm-up, a context switch, NCCL's own protocol misstep).
    for (const NcclTestsRow& larger : log.rows)
      if (larger.bytes > r.bytes && larger.time_us > 0 && r.time_us > larger.time_us * (1 + noise_margin)) {
        why[i] = fmt::format("noise: slower than {:.0f} B ({:.2f} us)", larger.bytes, larger.time_us);
        break;
      }
  }
  return why;
}

// Minimises f over [lo, hi] from `start`: a grid scan, then golden section between the best
// point's neighbours down to `tolerance` (one constant's misfit is close to unimodal, but protocol
// and algorithm switches put kinks in it that a bracket from the scan steps over).
double minimise(const std::function<double(double)>& f, double start, double lo, double hi, int grid, double tolerance) {
  double best = std::clamp(start, lo, hi), best_f = f(best);
  const double step = (hi - lo) / (grid - 1);
  for (int i = 0; i < grid; ++i)
    if (const double v = lo + step * i, fv = f(v); fv < best_f) best = v, best_f = fv;
  double a = std::max(lo, best - step), b = std::min(hi, best + step);
  const double golden = (std::sqrt(5.0) - 1) / 2;
  double c = b - golden * (b - a), d = a + golden * (b - a), fc = f(c), fd = f(d);
  while (b - a > tolerance) {
    if (fc < fd) b = d, d = c, fd = fc, c = b - golden * (b - a), fc = f(c);
    else a = c, c = d, fc = fd, d = a + golden * (b - a), fd = f(d);
  }
  const double mid = 0.5 * (a + b);
  return f(mid) < best_f ? mid : best;
}

}  // namespace

const std::vector<std::string>& calibration_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (const Knob& x : knobs()) k.push_back(x.key);
    return k;
  }();
  return keys;
}

std::vector<std::string> default_calibration_keys(const Topology& topology, const std::vector<CalibrationSet>& sets) {
  bool inside = false, across = false;
  for (const CalibrationSet& s : sets) (spans_nodes(topology, s) ? across : inside) = true;
  std::vector<std::string> keys;
  if (inside) keys = {"collectives.launch_latency", "intra.efficiency"};
  if (across) keys.insert(keys.end(), {"nic.efficiency", "nic.latency"});
  return keys;
}

std::vector<double> predicted_times_us(const Topology& topology, const CalibrationSet& set) {
  std::vector<double> us;
  for (const NcclTestsRow& r : set.log.rows)
    us.push_back(r.bytes > 0 ? time_collective(topology, set.op, set.algorithm, set.group, r.bytes,
                                               EngineOptions{Fidelity::flow}).seconds * 1e6
                             : 0.0);
  return us;
}

std::pair<double, double> median_and_max_abs(std::vector<double> x) {
  if (x.empty()) return {0, 0};
  for (double& v : x) v = std::fabs(v);
  std::sort(x.begin(), x.end());
  const size_t n = x.size();
  const double median = n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
  return {median, x.back()};
}

Calibration calibrate(const Topology& topology, const std::vector<CalibrationSet>& sets, const CalibrationOptions& options) {
  const std::vector<std::string> keys = options.keys.empty() ? default_calibration_keys(topology, sets) : options.keys;
  std::vector<const Knob*> fit;
  for (const std::string& key : keys) {
    const Knob& k = knob(key);
    if (std::find(fit.begin(), fit.end(), &k) == fit.end()) fit.push_back(&k);
  }
  const bool across = std::any_of(sets.begin(), sets.end(), [&](const CalibrationSet& s) { return spans_nodes(topology, s); });
  for (const Knob* k : fit)
    if (std::string(k->key).rfind("nic.", 0) == 0 && (!across || topology.nic.count <= 0))
      throw InputError("", 0, 0, "--fit", fmt::format("{} cannot be fitted: no log spans nodes of '{}', so no "
                                                      "time depends on the NICs", k->key, topology.name));

  Calibration cal;
  cal.before = topology;
  std::vector<std::vector<std::string>> skipped;
  for (size_t s = 0; s < sets.size(); ++s) {
    skipped.push_back(skip_reasons(sets[s].log, options.noise_margin));
    if (std::all_of(skipped[s].begin(), skipped[s].end(), [](const std::string& w) { return !w.empty(); }))
      throw InputError(sets[s].log.file, 0, 0, "", "no row left to fit: every row is 0 B or slower than a larger size");
  }

  // A latency paid once per collective cannot exceed the fastest collective measured.
  double fastest = 1e300;
  for (size_t s = 0; s < sets.size(); ++s)
    for (size_t i = 0; i < sets[s].log.rows.size(); ++i)
      if (skipped[s][i].empty()) fastest = std::min(fastest, sets[s].log.rows[i].time_us * 1e-6);
  auto upper_bound = [&](const Knob& k) { return k.is_time ? std::min(k.upper, fastest) : k.upper; };

  // The fitted rows' predicted times (us) on `t`, and their measured times, in one order.
  std::vector<double> measured;
  for (size_t s = 0; s < sets.size(); ++s)
    for (size_t i = 0; i < sets[s].log.rows.size(); ++i)
      if (skipped[s][i].empty()) measured.push_back(sets[s].log.rows[i].time_us);
  auto predict = [&](const Topology& t) {
    ++cal.evaluations;
    std::vector<double> us;
    for (size_t s = 0; s < sets.size(); ++s) {
      const std::vector<double> all = predicted_times_us(t, sets[s]);
      for (size_t i = 0; i < all.size(); ++i)
        if (skipped[s][i].empty()) us.push_back(all[i]);
    }
    return us;
  };
  // Sum of ln(predicted / measured)^2, the predictions shifted by `shift_us`.
  auto misfit = [&](const std::vector<double>& us, double shift_us) {
    double sum = 0;
    for (size_t i = 0; i < us.size(); ++i) sum += std::pow(std::log(std::max(1e-9, us[i] + shift_us) / measured[i]), 2);
    return sum;
  };

  Topology t = topology;
  for (const Knob* k : fit) k->at(t) = std::clamp(k->at(t), k->lower, upper_bound(*k));

  // The launch latency is paid once per collective, whatever the protocol or algorithm: every
  // time moves by exactly its change. Checked here on the rows themselves; when it holds, the
  // fit picks the best launch latency for each probe of the other constants from the same engine
  // run (it and a per-step latency trade off almost one for one, which coordinate steps crawl along).
  const Knob* launch = nullptr;
  for (const Knob* k : fit)
    if (std::string(k->key) == "collectives.launch_latency") {
      const std::vector<double> base = predict(t);
      Topology shifted = t;
      k->at(shifted) += 10e-6;
      const std::vector<double> moved = predict(shifted);
      bool additive = true;
      for (size_t i = 0; i < base.size(); ++i) additive = additive && std::fabs(moved[i] - base[i] - 10) < 1e-6;
      if (additive) launch = k;
    }
  double best_launch = launch ? launch->at(t) : 0;
  auto objective = [&](Topology& probe) {
    const std::vector<double> us = predict(probe);
    if (!launch) return misfit(us, 0);
    const double now = launch->at(probe);
    best_launch = minimise([&](double l) { return misfit(us, (l - now) * 1e6); }, now, launch->lower, upper_bound(*launch), 17,
                           launch->tolerance);
    return misfit(us, (best_launch - now) * 1e6);
  };

  // The first sweep scans each constant's whole range; later ones refine around where it landed.
  for (int sweep = 0; sweep < 4; ++sweep) {
    bool moved = false;
    for (const Knob* k : fit) {
      if (k == launch) continue;
      const double old = k->at(t), upper = upper_bound(*k);
      const double width = (upper - k->lower) / 32;
      auto f = [&](double v) {
        Topology probe = t;
        k->at(probe) = v;
        return objective(probe);
      };
      const double v = sweep == 0 ? minimise(f, old, k->lower, upper, 9, k->tolerance)
                                  : minimise(f, old, std::max(k->lower, old - width), std::min(upper, old + width), 3, k->tolerance);
      k->at(t) = v;
      moved = moved || std::fabs(v - old) > 5 * k->tolerance;
    }
    if (!moved) break;
  }
  if (launch) {
    objective(t);
    launch->at(t) = best_launch;
  }

  cal.after = topology;
  for (const Knob* k : fit) {
    FittedParameter p;
    p.key = k->key;
    p.before = k->at(cal.before);
    p.lower = k->lower, p.upper = upper_bound(*k);
    p.yaml_value = yaml_text(*k, k->at(t));
    p.after = k->at(cal.after) = as_written(*k, k->at(t));
    cal.parameters.push_back(p);
  }

  std::vector<double> before_errors, after_errors;
  for (size_t s = 0; s < sets.size(); ++s) {
    const std::vector<double> before = predicted_times_us(cal.before, sets[s]), after = predicted_times_us(cal.after, sets[s]);
    for (size_t i = 0; i < before.size(); ++i) {
      const NcclTestsRow& r = sets[s].log.rows[i];
      CalibrationRow row{s, r.line, r.bytes, r.time_us, before[i], after[i], skipped[s][i]};
      if (row.skipped.empty()) before_errors.push_back(row.error_before()), after_errors.push_back(row.error_after());
      cal.rows.push_back(row);
    }
  }
  std::tie(cal.median_before, cal.max_before) = median_and_max_abs(before_errors);
  std::tie(cal.median_after, cal.max_after) = median_and_max_abs(after_errors);
  return cal;
}

}  // namespace tpsim
