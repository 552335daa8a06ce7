// The fit behind `tpsim calibrate`: a few physical constants of the topology, each searched within
// its physical range, so that the engine's times for the logs' collectives match the measured
// ones in log space (a 10% miss at 8 B weighs what a 10% miss at 8 GiB does), each constant on the
// rows its physics governs: an efficiency on the bandwidth-bound rows, a latency on the
// latency-bound rows. Rows in between (NCCL's network pipelining, protocol switches: terms the
// model may lack) are predicted, not fitted, so they cannot drag a bandwidth constant away from
// the sizes where the measurement is cleanest. Each constant is found by a grid scan and a
// golden-section refinement; deterministic, no randomness, no tolerance on the data.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

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

// Minimises f over [lo, hi] from `start`: a grid scan, then Brent's method (parabolic steps
// through the last three points, golden section where they misbehave) between the best grid
// point's neighbours, down to `tolerance`. One constant's misfit is close to a parabola near its
// minimum, so Brent needs ~8 evaluations where golden section alone needs ~18; protocol and
// algorithm switches put kinks in it, which the grid scan steps over.
double minimise(const std::function<double(double)>& f, double start, double lo, double hi, int grid, double tolerance) {
  double best = std::clamp(start, lo, hi), best_f = f(best);
  const double step = (hi - lo) / (grid - 1);
  for (int i = 0; i < grid; ++i)
    if (const double v = lo + step * i, fv = f(v); fv < best_f) best = v, best_f = fv;
  double a = std::max(lo, best - step), b = std::min(hi, best + step);
  const double cgold = (3 - std::sqrt(5.0)) / 2;
  double x = best, w = best, v = best, fx = best_f, fw = best_f, fv = best_f, d = 0, e = 0;
  for (int iter = 0; iter < 60; ++iter) {
    const double m = 0.5 * (a + b), tol1 = 0.5 * tolerance, tol2 = 2 * tol1;
    if (std::fabs(x - m) <= tol2 - 0.5 * (b - a)) break;
    bool golden = true;
    if (std::fabs(e) > tol1) {   // a parabola through x, w, v
      double r = (x - w) * (fx - fv), q = (x - v) * (fx - fw), p = (x - v) * q - (x - w) * r;
      q = 2 * (q - r);
      if (q > 0) p = -p;
      q = std::fabs(q);
      const double etemp = e;
      e = d;
      if (std::fabs(p) < std::fabs(0.5 * q * etemp) && p > q * (a - x) && p < q * (b - x)) {
        d = p / q;
        const double u = x + d;
        if (u - a < tol2 || b - u < tol2) d = m > x ? tol1 : -tol1;
        golden = false;
      }
    }
    if (golden) e = (x >= m ? a : b) - x, d = cgold * e;
    const double u = std::fabs(d) >= tol1 ? x + d : x + (d > 0 ? tol1 : -tol1);
    const double fu = f(u);
    if (fu <= fx) {
      (u >= x ? a : b) = x;
      v = w, fv = fw, w = x, fw = fx, x = u, fx = fu;
    } else {
      (u < x ? a : b) = u;
      if (fu <= fw || w == x) v = w, fv = fw, w = u, fw = fu;
      else if (fu <= fv || v == x || v == w) v = u, fv = fu;
    }
  }
  return x;
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


const char* to_string(RowRegime r) {
  switch (r) {
    case RowRegime::noise: return "noise";
    case RowRegime::latency: return "latency";
    case RowRegime::mid: return "mid-size";
    case RowRegime::bandwidth: return "bandwidth";
  }
  return "?";
}

namespace {

// Each non-noise row's regime, from the log's measured times alone (never from the model, whose
// missing terms are what the regimes keep out of the fit).
//   latency:   time <= latency_ratio x the log's fastest fitted row: at least 1/1.3 = 77% of the
//              time is the floor every size pays.
//   bandwidth: the largest sizes whose time grows with the size at least `share` as fast as the
//              size does: e = ln(t_i / t_j) / ln(n_i / n_j) against the next smaller fitted row j.
//              Where t = floor + n / bw holds, e is exactly the bandwidth's share of the time
//              (n/bw over t); the backward difference takes it at a smaller size, so it errs
//              towards "not bandwidth-bound". Only the contiguous run from the largest size down
//              counts, so a noisy jump at a mid size does not qualify.
//   mid:       the rest.
// Why not "time >= 8x the fastest" (which assumes the same floor + n / bw form): on the 2-node
// a3mega log the rows from 16 MiB to 128 MiB sit on a plateau of NCCL's network pipelining
// (32 MiB takes 8.6x the floor at 17% of the 8 GiB bus bandwidth), so that rule calls them
// bandwidth-bound and they pull the NIC efficiency down by half; their e is 0.12-0.52.
std::vector<RowRegime> regimes(const NcclTestsLog& log, const std::vector<std::string>& skipped, const CalibrationOptions& o) {
  std::vector<RowRegime> r(log.rows.size(), RowRegime::noise);
  std::vector<size_t> kept;   // fitted rows, by size
  for (size_t i = 0; i < log.rows.size(); ++i)
    if (skipped[i].empty()) kept.push_back(i);
  std::stable_sort(kept.begin(), kept.end(), [&](size_t a, size_t b) { return log.rows[a].bytes < log.rows[b].bytes; });
  if (kept.empty()) return r;
  double fastest = 1e300;
  for (size_t i : kept) fastest = std::min(fastest, log.rows[i].time_us);
  for (size_t i : kept) r[i] = log.rows[i].time_us <= o.latency_ratio * fastest ? RowRegime::latency : RowRegime::mid;
  for (size_t k = kept.size(); k-- > 1;) {
    const NcclTestsRow &a = log.rows[kept[k]], &b = log.rows[kept[k - 1]];
    if (r[kept[k]] != RowRegime::mid || a.bytes <= b.bytes) break;
    const double e = std::log(a.time_us / b.time_us) / std::log(a.bytes / b.bytes);
    if (e < o.bandwidth_share) break;
    r[kept[k]] = RowRegime::bandwidth;
  }
  return r;
}

std::string size_text(double bytes) {
  const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4 && std::fmod(bytes, 1024) == 0) bytes /= 1024, ++u;
  return fmt::format("{:g} {}", bytes, unit[u]);
}

// "tree 8 B - 64 KiB, ring 128 KiB - 8 GiB": runs of one algorithm over a log's sizes.
std::string algorithm_runs(const std::vector<double>& bytes, const std::vector<Algorithm>& algo) {
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    size_t j = i;
    while (j + 1 < bytes.size() && algo[j + 1] == algo[i]) ++j;
    out += fmt::format("{}{} {}{}", out.empty() ? "" : ", ", to_string(algo[i]), size_text(bytes[i]),
                       j > i ? " - " + size_text(bytes[j]) : "");
    i = j + 1;
  }
  return out;
}

}  // namespace

std::vector<RowRegime> row_regimes(const NcclTestsLog& log, const CalibrationOptions& options) {
  return regimes(log, skip_reasons(log, options.noise_margin), options);
}

Calibration calibrate(const Topology& topology, const std::vector<CalibrationSet>& sets, const CalibrationOptions& options) {
  const std::vector<std::string> keys = options.keys.empty() ? default_calibration_keys(topology, sets) : options.keys;
  std::vector<const Knob*> fit;
  for (const std::string& key : keys) {
    const Knob& k = knob(key);
    if (std::find(fit.begin(), fit.end(), &k) == fit.end()) fit.push_back(&k);
  }
  const bool across = std::any_of(sets.begin(), sets.end(), [&](const CalibrationSet& s) { return spans_nodes(topology, s); });
  auto is_nic = [](const Knob* k) { return std::string(k->key).rfind("nic.", 0) == 0; };
  for (const Knob* k : fit)
    if (is_nic(k) && (!across || topology.nic.count <= 0))
      throw InputError("", 0, 0, "--fit", fmt::format("{} cannot be fitted: no log spans nodes of '{}', so no "
                                                      "time depends on the NICs", k->key, topology.name));

  Calibration cal;
  cal.before = topology;
  std::vector<std::vector<std::string>> skipped;
  std::vector<std::vector<RowRegime>> regime;
  for (size_t s = 0; s < sets.size(); ++s) {
    skipped.push_back(skip_reasons(sets[s].log, options.noise_margin));
    if (std::all_of(skipped[s].begin(), skipped[s].end(), [](const std::string& w) { return !w.empty(); }))
      throw InputError(sets[s].log.file, 0, 0, "", "no row left to fit: every row is 0 B or slower than a larger size");
    regime.push_back(regimes(sets[s].log, skipped[s], options));
  }

  // The before column, and the algorithm each row is timed with during the fit: an `automatic`
  // set is resolved per size once, on the starting constants (the selector reprices every
  // candidate algorithm at each size, which would multiply the fit's cost and put jumps in its
  // misfit); the protocol is still chosen per trial. The after column re-resolves.
  std::vector<std::vector<double>> before_us(sets.size());
  std::vector<std::vector<Algorithm>> pinned(sets.size());
  for (size_t s = 0; s < sets.size(); ++s) {
    std::vector<double> sizes;
    for (const NcclTestsRow& r : sets[s].log.rows) {
      const CollectiveTiming c = r.bytes > 0 ? time_collective(topology, sets[s].op, sets[s].algorithm, sets[s].group, r.bytes,
                                                               EngineOptions{Fidelity::flow})
                                             : CollectiveTiming{};
      before_us[s].push_back(r.bytes > 0 ? c.seconds * 1e6 : 0.0);
      pinned[s].push_back(r.bytes > 0 ? c.algorithm : sets[s].algorithm);
      if (r.bytes > 0) sizes.push_back(r.bytes);
    }
    if (sets[s].algorithm == Algorithm::automatic) {
      std::vector<Algorithm> a;
      for (size_t i = 0; i < pinned[s].size(); ++i)
        if (sets[s].log.rows[i].bytes > 0) a.push_back(pinned[s][i]);
      cal.notes.push_back(fmt::format("{}: algorithm auto, resolved per size on the starting constants and held fixed during "
                                      "the fit: {}", sets[s].log.file, algorithm_runs(sizes, a)));
    }
  }

  // A latency paid once per collective cannot exceed the fastest collective measured.
  double fastest = 1e300;
  for (size_t s = 0; s < sets.size(); ++s)
    for (size_t i = 0; i < sets[s].log.rows.size(); ++i)
      if (skipped[s][i].empty()) fastest = std::min(fastest, sets[s].log.rows[i].time_us * 1e-6);
  auto upper_bound = [&](const Knob& k) { return k.is_time ? std::min(k.upper, fastest) : k.upper; };

  // The rows a constant is fitted on: its regime's rows (latency for a time, bandwidth for an
  // efficiency) whose time depends on it (a NIC constant: the sets that span nodes).
  struct RowRef {
    size_t set, row;
  };
  auto rows_for = [&](const Knob* k) {
    std::vector<RowRef> rows;
    const RowRegime want = k->is_time ? RowRegime::latency : RowRegime::bandwidth;
    for (size_t s = 0; s < sets.size(); ++s)
      if (!is_nic(k) || spans_nodes(topology, sets[s]))
        for (size_t i = 0; i < sets[s].log.rows.size(); ++i)
          if (regime[s][i] == want) rows.push_back({s, i});
    return rows;
  };
  auto predict = [&](const Topology& t, const std::vector<RowRef>& rows) {
    ++cal.evaluations;
    std::vector<double> us;
    for (const RowRef& r : rows) {
      ++cal.timings;
      const CalibrationSet& set = sets[r.set];
      us.push_back(time_collective(t, set.op, pinned[r.set][r.row], set.group, set.log.rows[r.row].bytes,
                                   EngineOptions{Fidelity::flow}).seconds * 1e6);
    }
    return us;
  };
  // Sum of ln(predicted / measured)^2 over `rows`, the predictions shifted by `shift_us`.
  auto misfit = [&](const std::vector<double>& us, const std::vector<RowRef>& rows, double shift_us) {
    double sum = 0;
    for (size_t i = 0; i < us.size(); ++i)
      sum += std::pow(std::log(std::max(1e-9, us[i] + shift_us) / sets[rows[i].set].log.rows[rows[i].row].time_us), 2);
    return sum;
  };

  Topology t = topology;
  for (const Knob* k : fit) k->at(t) = std::clamp(k->at(t), k->lower, upper_bound(*k));

  std::map<const Knob*, std::vector<RowRef>> rows_of;
  std::vector<const Knob*> bandwidth_knobs, latency_knobs;
  for (const Knob* k : fit) {
    rows_of[k] = rows_for(k);
    if (rows_of[k].empty()) continue;
    (k->is_time ? latency_knobs : bandwidth_knobs).push_back(k);
  }

  // The launch latency is paid once per collective, whatever the protocol or algorithm: every
  // time moves by exactly its change. Checked here on the latency rows; when it holds, the fit
  // picks the best launch latency for each probe of the other latencies from the same engine run
  // (it and a per-step latency trade off almost one for one, which coordinate steps crawl along).
  const Knob* launch = nullptr;
  std::vector<RowRef> latency_rows;
  for (const Knob* k : latency_knobs)
    if (std::string(k->key) == "collectives.launch_latency") {
      latency_rows = rows_of[k];   // every latency row: the launch latency is in each
      const std::vector<double> base = predict(t, latency_rows);
      Topology shifted = t;
      k->at(shifted) += 10e-6;
      const std::vector<double> moved = predict(shifted, latency_rows);
      bool additive = true;
      for (size_t i = 0; i < base.size(); ++i) additive = additive && std::fabs(moved[i] - base[i] - 10) < 1e-6;
      if (additive) launch = k;
    }
  double best_launch = launch ? launch->at(t) : 0;
  auto profile_launch = [&](const std::vector<double>& us, double now) {
    best_launch = minimise([&](double l) { return misfit(us, latency_rows, (l - now) * 1e6); }, now, launch->lower,
                           upper_bound(*launch), 17, launch->tolerance);
    return misfit(us, latency_rows, (best_launch - now) * 1e6);
  };

  // One group of constants (one regime) by coordinate descent, each on its own rows (moving one
  // constant changes only the rows that depend on it, so this is the group's least squares).
  // `scan`: search each constant's whole range; else refine within 1/32 of it around where it is.
  // Returns whether any constant moved by more than its written precision.
  auto fit_group = [&](const std::vector<const Knob*>& group, bool scan) {
    bool any = false;
    std::vector<const Knob*> coords;
    for (const Knob* k : group)
      if (k != launch) coords.push_back(k);
    if (coords.empty() && launch) {   // the launch latency alone: one engine run
      const std::vector<double> us = predict(t, latency_rows);
      profile_launch(us, launch->at(t));
      any = std::fabs(best_launch - launch->at(t)) > 5 * launch->tolerance;
      launch->at(t) = best_launch;
      return any;
    }
    for (int sweep = 0; sweep < (coords.size() > 1 ? 4 : 1); ++sweep) {
      bool moved = false;
      for (const Knob* k : coords) {
        const std::vector<RowRef>& rows = launch && k->is_time ? latency_rows : rows_of[k];
        const double old = k->at(t), upper = upper_bound(*k);
        const double width = (upper - k->lower) / 32;
        auto f = [&](double v) {
          Topology probe = t;
          k->at(probe) = v;
          const std::vector<double> us = predict(probe, rows);
          return launch && k->is_time ? profile_launch(us, launch->at(probe)) : misfit(us, rows, 0);
        };
        const double v = scan && sweep == 0 ? minimise(f, old, k->lower, upper, 9, k->tolerance)
                                            : minimise(f, old, std::max(k->lower, old - width), std::min(upper, old + width), 3,
                                                       k->tolerance);
        k->at(t) = v;
        moved = moved || std::fabs(v - old) > 5 * k->tolerance;
        if (launch && k->is_time) {
          f(v);   // the launch latency that goes with v
          launch->at(t) = best_launch;
        }
      }
      any = any || moved;
      if (!moved) break;
    }
    return any;
  };

  // Bandwidth first (its rows barely depend on the latencies), then the latencies with the
  // efficiencies fixed; then once more each while the bandwidth constants still move (the latency
  // fit shifts the bandwidth rows' small latency share).
  if (!bandwidth_knobs.empty()) fit_group(bandwidth_knobs, true);
  if (!latency_knobs.empty()) fit_group(latency_knobs, true);
  for (int round = 0; round < 2 && !bandwidth_knobs.empty() && !latency_knobs.empty(); ++round)
    if (!fit_group(bandwidth_knobs, false) || !fit_group(latency_knobs, false)) break;

  cal.after = topology;
  for (const Knob* k : fit) {
    FittedParameter p;
    p.key = k->key;
    p.before = k->at(cal.before);
    p.lower = k->lower, p.upper = upper_bound(*k);
    p.rows = int(rows_of[k].size());
    if (rows_of[k].empty()) {
      p.unfitted = fmt::format("no {}-bound row{} in the logs", k->is_time ? "latency" : "bandwidth",
                               is_nic(k) ? " that spans nodes" : "");
      p.yaml_value = yaml_text(*k, p.before);
      p.after = p.before;
      cal.notes.push_back(fmt::format("{} not fitted: {}; left at {}", p.key, p.unfitted, p.yaml_value));
    } else {
      p.yaml_value = yaml_text(*k, k->at(t));
      p.after = k->at(cal.after) = as_written(*k, k->at(t));
    }
    cal.parameters.push_back(p);
  }

  std::map<RowRegime, std::vector<double>> before_e, after_e;
  std::vector<double> fitted_before, fitted_after;
  for (size_t s = 0; s < sets.size(); ++s) {
    std::vector<std::string> changed;
    for (size_t i = 0; i < sets[s].log.rows.size(); ++i) {
      const NcclTestsRow& r = sets[s].log.rows[i];
      CalibrationRow row;
      row.set = s, row.line = r.line, row.bytes = r.bytes, row.measured_us = r.time_us, row.before_us = before_us[s][i];
      row.skipped = skipped[s][i];
      row.regime = regime[s][i];
      row.fit_algorithm = row.after_algorithm = pinned[s][i];
      if (r.bytes > 0) {
        const CollectiveTiming c = time_collective(cal.after, sets[s].op, sets[s].algorithm, sets[s].group, r.bytes,
                                                   EngineOptions{Fidelity::flow});
        row.after_us = c.seconds * 1e6, row.after_algorithm = c.algorithm;
        if (row.after_algorithm != row.fit_algorithm)
          changed.push_back(fmt::format("{} at {}", to_string(row.after_algorithm), size_text(r.bytes)));
      }
      if (row.regime != RowRegime::noise) {
        before_e[row.regime].push_back(row.error_before()), after_e[row.regime].push_back(row.error_after());
        if (row.regime != RowRegime::mid) fitted_before.push_back(row.error_before()), fitted_after.push_back(row.error_after());
      }
      cal.rows.push_back(row);
    }
    if (!changed.empty()) {
      std::string list;
      for (const std::string& c : changed) list += (list.empty() ? "" : ", ") + c;
      cal.notes.push_back(fmt::format("{}: on the fitted constants auto picks another algorithm than the fit timed: {} "
                                      "(the after column shows what it picks)", sets[s].log.file, list));
    }
  }
  std::tie(cal.median_before, cal.max_before) = median_and_max_abs(fitted_before);
  std::tie(cal.median_after, cal.max_after) = median_and_max_abs(fitted_after);
  for (auto [r, e] : {std::pair{RowRegime::latency, &cal.latency}, {RowRegime::mid, &cal.mid}, {RowRegime::bandwidth, &cal.bandwidth}}) {
    e->rows = int(before_e[r].size());
    std::tie(e->median_before, e->max_before) = median_and_max_abs(before_e[r]);
    std::tie(e->median_after, e->max_after) = median_and_max_abs(after_e[r]);
  }
  return cal;
}

}  // namespace tpsim
