// The numerics GEMM's invariant, checked against its definition: every C element is one chain of
// fused multiply-adds over k in increasing order (from 0, or from C when accumulating), whatever the
// transposes, the edge tiles or how C is split over threads. Column-parallel bit-exactness rests on it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "numerics/kernels.hpp"

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

// out[i][j] = fma chain over p of op(A)[i][p] * op(B)[p][j], in increasing p.
Mat reference(const GemmInfo& g, const Mat& a, const Mat& b, const Mat& start) {
  Mat c(g.m, g.n);
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) {
      float acc = g.accumulate ? start(i, j) : 0.f;
      for (int64_t p = 0; p < g.k; ++p) {
        const float x = g.trans_a ? a(p, i) : a(i, p);
        const float y = g.trans_b ? b(j, p) : b(p, j);
        acc = std::fma(x, y, acc);
      }
      c(i, j) = acc;
    }
  return c;
}

int differing_bits(const Mat& x, const Mat& y) {
  int n = 0;
  for (int64_t i = 0; i < x.size(); ++i) n += std::memcmp(x.data() + i, y.data() + i, sizeof(float)) != 0;
  return n;
}

}  // namespace

TEST_CASE("numerics GEMM equals a plain fma chain bit for bit on every path") {
  struct Case { int64_t m, n, k; bool ta, tb, acc; };
  const Case cases[] = {
      {7, 5, 3, false, false, false},       // smaller than one register tile
      {37, 300, 30, false, false, false},   // edge tiles in both dimensions
      {1200, 40, 700, false, false, false}, // tall C: split by rows over threads, k over two KC blocks
      {64, 1500, 800, false, false, false}, // wide C: split by columns
      {50, 70, 90, true, false, false},     // A transposed (weight-gradient GEMM X^T dY)
      {50, 70, 90, false, true, false},     // B transposed (input-gradient GEMM dY W^T)
      {33, 45, 500, true, true, true},      // both transposed, accumulating into C
      {3, 1, 1, false, false, true},        // a single-element chain from C
  };
  unsigned seed = 1;
  for (const Case& c : cases) {
    CAPTURE(c.m);
    CAPTURE(c.n);
    CAPTURE(c.k);
    GemmInfo g{c.m, c.n, c.k, c.ta, c.tb, c.acc};
    const Mat a = c.ta ? random_mat(c.k, c.m, seed++) : random_mat(c.m, c.k, seed++);
    const Mat b = c.tb ? random_mat(c.n, c.k, seed++) : random_mat(c.k, c.n, seed++);
    const Mat start = random_mat(c.m, c.n, seed++);
    Mat out = start;
    numerics::gemm(g, a, b, out);
    CHECK(differing_bits(out, reference(g, a, b, start)) == 0);
  }
}
