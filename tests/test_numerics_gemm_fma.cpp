// The numerics GEMM's invariant, checked against its definition: every C element is one chain of
// fused multiply-adds over k in increasing order (from 0, or from C when accumulating), whatever the
// transposes, the edge tiles, how C is split over threads, or which instruction set runs it
// (AVX-512, AVX2, scalar: every path this CPU runs is tried). Column-parallel bit-exactness rests on it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "numerics/kernels.hpp"
#include "relative.hpp"

using namespace tpsim;
using numerics::Mat;

namespace {

Mat random_mat(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Mat m(rows, cols);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) m(i, j) = u(rng);
  return m;
}

float op_a(const GemmInfo& g, const Mat& a, int64_t i, int64_t p) { return g.trans_a ? a(p, i) : a(i, p); }
float op_b(const GemmInfo& g, const Mat& b, int64_t p, int64_t j) { return g.trans_b ? b(j, p) : b(p, j); }

// out[i][j] = fma chain over p of op(A)[i][p] * op(B)[p][j], in increasing p.
Mat reference(const GemmInfo& g, const Mat& a, const Mat& b, const Mat& start) {
  Mat c(g.m, g.n);
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) {
      float acc = g.accumulate ? start(i, j) : 0.f;
      for (int64_t p = 0; p < g.k; ++p) acc = std::fma(op_a(g, a, i, p), op_b(g, b, p, j), acc);
      c(i, j) = acc;
    }
  return c;
}

int differing_bits(const Mat& x, const Mat& y) {
  int n = 0;
  for (int64_t i = 0; i < x.size(); ++i) n += std::memcmp(x.data() + i, y.data() + i, sizeof(float)) != 0;
  return n;
}

// Switches the GEMM to one path for a scope, back to the one before at its end.
struct ForcePath {
  std::string before = numerics::gemm_isa();
  explicit ForcePath(const std::string& isa) { numerics::set_gemm_isa(isa); }
  ~ForcePath() { numerics::set_gemm_isa(before); }
};

struct Case { int64_t m, n, k; bool ta, tb, acc; };

// Tiles are 14x32 (AVX-512), 6x16 (AVX2), 4x16 (scalar): sizes one past, one short of and inside
// them leave edge tiles on every path.
const Case kAwkward[] = {
    {7, 5, 3, false, false, false},        // smaller than one register tile
    {15, 33, 1, false, false, false},      // k = 1: a single fma per element
    {13, 47, 1, false, false, true},       // k = 1 from C
    {37, 300, 30, false, false, false},    // edge tiles in both dimensions
    {29, 97, 257, false, false, false},    // k one past the AVX-512 k block
    {1200, 40, 700, false, false, false},  // tall C: split by rows over threads, k over two blocks
    {64, 1500, 800, false, false, false},  // wide C: split by columns
    {50, 70, 90, true, false, false},      // A transposed (weight-gradient GEMM X^T dY)
    {50, 70, 90, false, true, false},      // B transposed (input-gradient GEMM dY W^T)
    {33, 45, 500, true, true, true},       // both transposed, accumulating into C
    {3, 1, 1, false, false, true},         // a single-element chain from C
    {301, 1031, 389, false, true, true},   // threads, edges and k blocks at once, accumulating
};

struct Inputs {
  GemmInfo g;
  Mat a, b, start;
};

Inputs inputs(const Case& c, unsigned seed) {
  Inputs in{GemmInfo{c.m, c.n, c.k, c.ta, c.tb, c.acc}, {}, {}, random_mat(c.m, c.n, seed + 2)};
  in.a = c.ta ? random_mat(c.k, c.m, seed) : random_mat(c.m, c.k, seed);
  in.b = c.tb ? random_mat(c.n, c.k, seed + 1) : random_mat(c.k, c.n, seed + 1);
  return in;
}

Mat run(const Inputs& in) {
  Mat out = in.start;
  numerics::gemm(in.g, in.a, in.b, out);
  return out;
}

}  // namespace

// Runs first (doctest keeps file order): the path the environment asked for is the one in use.
TEST_CASE("TPSIM_GEMM_ISA picks the GEMM path; without it the best one the CPU runs") {
  const std::vector<std::string> isas = numerics::gemm_isas();
  REQUIRE(!isas.empty());
  CHECK(isas.back() == "scalar");
  if (const char* env = std::getenv("TPSIM_GEMM_ISA"); env && *env) {
    CHECK(numerics::gemm_isa() == env);
  } else {
    CHECK(numerics::gemm_isa() == isas.front());
#if defined(__x86_64__) || defined(__i386__)
    CHECK((isas.front() == "avx512") == bool(__builtin_cpu_supports("avx512f")));
#endif
  }
  CHECK_THROWS(numerics::set_gemm_isa("sse9"));
}

TEST_CASE("every GEMM path equals a plain fma chain bit for bit, so the paths equal each other") {
  for (const std::string& isa : numerics::gemm_isas()) {
    CAPTURE(isa);
    const ForcePath force(isa);
    unsigned seed = 1;
    for (const Case& c : kAwkward) {
      CAPTURE(c.m);
      CAPTURE(c.n);
      CAPTURE(c.k);
      const Inputs in = inputs(c, seed += 3);
      CHECK(differing_bits(run(in), reference(in.g, in.a, in.b, in.start)) == 0);
    }
  }
  // And directly: the same inputs through every path give the same bits.
  const Inputs in = inputs({301, 1031, 389, true, false, true}, 99);
  std::vector<Mat> outs;
  for (const std::string& isa : numerics::gemm_isas()) {
    const ForcePath force(isa);
    outs.push_back(run(in));
  }
  for (size_t i = 1; i < outs.size(); ++i) CHECK(differing_bits(outs[i], outs[0]) == 0);
}

TEST_CASE("on every GEMM path a column or row shard has the bits of the same part of the full product") {
  for (const std::string& isa : numerics::gemm_isas()) {
    CAPTURE(isa);
    const ForcePath force(isa);
    for (const bool tb : {false, true}) {
      const Inputs in = inputs({75, 1100, 300, false, tb, false}, 7);
      const Mat full = run(in);
      // Shards that start and end inside tiles of every path, and one TP=8 column shard.
      for (const auto& [j0, w] : std::vector<std::pair<int64_t, int64_t>>{{5, 38}, {33, 17}, {137, 1}, {412, 688}, {0, 1100 / 8}}) {
        CAPTURE(j0);
        CAPTURE(w);
        const Mat b = tb ? Mat(in.b.middleRows(j0, w)) : Mat(in.b.middleCols(j0, w));
        Mat cols(in.g.m, w);
        numerics::gemm({in.g.m, w, in.g.k, false, tb, false}, in.a, b, cols);
        CHECK(differing_bits(cols, Mat(full.middleCols(j0, w))) == 0);
      }
      Mat rows(9, in.g.n);
      numerics::gemm({9, in.g.n, in.g.k, false, tb, false}, Mat(in.a.middleRows(20, 9)), in.b, rows);
      CHECK(differing_bits(rows, Mat(full.middleRows(20, 9))) == 0);
    }
  }
}

// A chain of k fmas from c0 rounds k times, each by at most u = 2^-24 relative, so it lies within
// gamma_k * (|c0| + sum |a_p b_p|) of the exact value, gamma_k = k u / (1 - k u) (Higham, 3.1); the
// double reference's own error is 2^-29 of that. The worst element against its bound is checked.
TEST_CASE("every GEMM path is within the fp32 rounding bound of a double-precision product") {
  for (const std::string& isa : numerics::gemm_isas()) {
    CAPTURE(isa);
    const ForcePath force(isa);
    unsigned seed = 100;
    for (const Case& c : kAwkward) {
      CAPTURE(c.m);
      CAPTURE(c.n);
      CAPTURE(c.k);
      const Inputs in = inputs(c, seed += 3);
      const Mat out = run(in);
      const double u = std::ldexp(1.0, -24), gamma = c.k * u / (1 - c.k * u);
      double worst = -1, got = 0, want = 0, tol = 0;
      for (int64_t i = 0; i < c.m; ++i)
        for (int64_t j = 0; j < c.n; ++j) {
          double exact = c.acc ? in.start(i, j) : 0.0, magnitude = std::fabs(exact);
          for (int64_t p = 0; p < c.k; ++p) {
            const double term = double(op_a(in.g, in.a, i, p)) * op_b(in.g, in.b, p, j);
            exact += term;
            magnitude += std::fabs(term);
          }
          const double bound = gamma * magnitude, err = std::fabs(out(i, j) - exact);
          if (exact != 0 && err / bound > worst) worst = err / bound, got = out(i, j), want = exact, tol = bound / std::fabs(exact);
        }
      CHECK(got == rel(want, tol));
    }
  }
}
