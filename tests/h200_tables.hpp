// Readers for the measured H200 kernel tables (data/reference/h200_kernels_2026-11-30/), shared
// by the GEMM-shape and memory-bound-kernel tests and the accuracy report, and a small minimiser
// for their fits.
#pragma once

#include "csv_cells.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

struct H200Gemm {
  int64_t m = 0, n = 0, k = 0;
  double seconds = 0;
  std::string kind;   // "layer" (a model's linear at TP 1-8, 2048-8192 tokens), "decode", "grid"
};

// The rows of gemm_h200.csv in `dtype` ("bf16", "fp8", "fp32"), in file order.
inline std::vector<H200Gemm> h200_gemms(const std::string& dtype = "bf16") {
  std::ifstream in(std::string(TPSIM_REFERENCE_DIR) + "/h200_kernels_2026-11-30/gemm_h200.csv");
  if (!in.good()) throw std::runtime_error("cannot read h200_kernels_2026-11-30/gemm_h200.csv");
  std::vector<H200Gemm> rows;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#' || line.rfind("m,", 0) == 0) continue;
    const std::vector<std::string> f = csv_cells(line);
    if (f.size() < 8) throw std::runtime_error("gemm_h200.csv: a row of " + std::to_string(f.size()) + " fields");
    if (f[3] != dtype) continue;
    const std::string kind = f[7] == "grid" ? "grid" : f[7].find("decode") != std::string::npos ? "decode" : "layer";
    rows.push_back({std::stoll(f[0]), std::stoll(f[1]), std::stoll(f[2]), std::stod(f[4]) * 1e-6, kind});
  }
  return rows;
}

struct H200Kernel {
  std::string kernel;   // "layernorm", "gelu", ..., "adamw_fused_fp32", "cross_entropy"
  int64_t rows = 0, cols = 0;
  double forward = 0, backward = 0;   // s (backward 0 when not measured)
};

inline std::vector<H200Kernel> h200_kernels() {
  std::ifstream in(std::string(TPSIM_REFERENCE_DIR) + "/h200_kernels_2026-11-30/kernels_h200.csv");
  if (!in.good()) throw std::runtime_error("cannot read h200_kernels_2026-11-30/kernels_h200.csv");
  std::vector<H200Kernel> rows;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#' || line.rfind("kernel,", 0) == 0) continue;
    const std::vector<std::string> f = csv_cells(line);
    if (f.size() < 7) throw std::runtime_error("kernels_h200.csv: a row of " + std::to_string(f.size()) + " fields");
    rows.push_back({f[0], std::stoll(f[2]), std::stoll(f[3]), std::stod(f[5]) * 1e-6, std::stod(f[6]) * 1e-6});
  }
  return rows;
}

// Nelder-Mead from x0 with initial steps `step`: the point of least f found in `iterations`.
inline std::vector<double> minimise(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x0,
                                    const std::vector<double>& step, int iterations = 400) {
  const size_t n = x0.size();
  std::vector<std::vector<double>> p(n + 1, x0);
  for (size_t i = 0; i < n; ++i) p[i + 1][i] += step[i];
  std::vector<double> v;
  for (const auto& x : p) v.push_back(f(x));
  auto along = [&](const std::vector<double>& c, const std::vector<double>& x, double t) {
    std::vector<double> y(n);
    for (size_t j = 0; j < n; ++j) y[j] = c[j] + t * (x[j] - c[j]);
    return y;
  };
  for (int it = 0; it < iterations; ++it) {
    std::vector<size_t> order(n + 1);
    for (size_t i = 0; i <= n; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    std::vector<std::vector<double>> q;
    std::vector<double> w;
    for (size_t i : order) q.push_back(p[i]), w.push_back(v[i]);
    p = q, v = w;
    std::vector<double> c(n, 0);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j) c[j] += p[i][j] / double(n);
    const std::vector<double> r = along(c, p[n], -1);
    const double fr = f(r);
    if (fr < v[0]) {
      const std::vector<double> e = along(c, p[n], -2);
      const double fe = f(e);
      if (fe < fr) p[n] = e, v[n] = fe;
      else p[n] = r, v[n] = fr;
    } else if (fr < v[n - 1]) {
      p[n] = r, v[n] = fr;
    } else {
      const std::vector<double> k = along(c, p[n], 0.5);
      const double fk = f(k);
      if (fk < v[n]) {
        p[n] = k, v[n] = fk;
      } else {
        for (size_t i = 1; i <= n; ++i) p[i] = along(p[0], p[i], 0.5), v[i] = f(p[i]);
      }
    }
  }
  return p[size_t(std::min_element(v.begin(), v.end()) - v.begin())];
}
