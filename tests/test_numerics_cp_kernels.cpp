// The context-parallel attention kernels (sim/numerics/kernels_cp.cpp) against an outside oracle:
// causal attention of whole sequences by PyTorch in float64, gradients by torch.autograd, and
// Megatron's causal load-balancing layout (tests/oracle/cp_kernels.py). Its printed numbers are
// tests/oracle/cp_kernels_expected.hpp; to regenerate after changing the script or a kernel's rule:
//     /usr/bin/python3 tests/oracle/cp_kernels.py > tests/oracle/cp_kernels_expected.hpp
// so this test needs no Python to run. Each rank's inputs are the oracle's rows that rank holds
// (the oracle's rows lists), so the kernels' own layout rule is checked against Megatron's.
//
// Tolerance rule: the kernels compute in fp32 from fp32 inputs, the reference in float64 from the
// same values. A value computed through a chain of n fp32 roundings is off by at most about n u
// times its terms' magnitudes (u = 2^-24). Each element of an output may be off by 4 n u times the
// largest reference value of that output (the largest, not its own: dS = P (dP - D) cancels, and a
// small element keeps the absolute error of the large terms that made it). n is the longest chain:
//   forward  n_f = d + 2 S + 8 cp + 8: a score (d-term FMA chain, scale), the softmax (exp, a sum of
//            at most S terms, divide), the S-term P V chain, log, and per merge of cp - 1 about 8
//            (exp, log1p, add, two weights, two products and their sum);
//   backward n_b = n_f + 2 d + (H/K + 1) S + cp + 8: D = rowsum(dO O) uses the merged O (n_f),
//            d-term dP and D, the S-term dQ chain, dK and dV chains over the H/K query heads of a kv
//            head times the rows, and the sum of cp block contributions.
// Two fp32 results that must agree with each other (merge orders, the cp = 1 block against the
// `attention` kernels) may differ by twice the bound.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kernel_calls.hpp"
#include "numerics/kernels.hpp"
#include "oracle/cp_kernels_expected.hpp"

using namespace tpsim;
using cp_oracle::Case;
using numerics::Mat;

namespace {

constexpr double kU = 0x1p-24;  // fp32 unit roundoff

using Attrs = std::map<std::string, double>;

using test::expect_close;
using test::kernel_error;
using test::largest;
using test::run_kernel;

Op cp_op(const std::string& fn, std::map<std::string, double> attrs) { return test::kernel_op(fn, std::move(attrs)); }

// An output as the kernel receives it, filled with NaN so an element it fails to write shows.
Mat unwritten(int64_t rows, int64_t cols) { return Mat::Constant(rows, cols, NAN); }

bool bit_equal(const Mat& a, const Mat& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * size_t(a.size())) == 0;
}

int n_forward(const Case& c, int cp) { return c.d + 2 * c.S + 8 * cp + 8; }
int n_backward(const Case& c, int cp) { return n_forward(c, cp) + 2 * c.d + (c.H / c.K + 1) * c.S + cp + 8; }

// The global rows rank `rank` of `cp` holds, in its local order (the oracle's list).
std::vector<int> rows_of(const Case& c, int cp, int rank) {
  const auto at = std::find(c.cps.begin(), c.cps.end(), cp);
  REQUIRE(at != c.cps.end());
  const std::vector<int>& all = c.rows[size_t(at - c.cps.begin())];
  const size_t T = size_t(c.B * c.S / cp);
  REQUIRE(all.size() == T * size_t(cp));
  return std::vector<int>(all.begin() + long(T * size_t(rank)), all.begin() + long(T * size_t(rank + 1)));
}

// Rows `rows`, columns [col0, col0 + cols) of a flattened row-major [*, width] matrix.
Mat gather(const std::vector<float>& full, int width, const std::vector<int>& rows, int col0, int cols) {
  Mat m(long(rows.size()), cols);
  for (size_t t = 0; t < rows.size(); ++t)
    for (int j = 0; j < cols; ++j) m(long(t), j) = full[size_t(rows[t]) * size_t(width) + size_t(col0 + j)];
  return m;
}
std::vector<double> gather(const std::vector<double>& full, int width, const std::vector<int>& rows, int col0,
                           int cols) {
  std::vector<double> v;
  for (int r : rows)
    for (int j = 0; j < cols; ++j) v.push_back(full[size_t(r) * size_t(width) + size_t(col0 + j)]);
  return v;
}

// max |got - want| in units of the bound 4 n u max|want| (the header's rule): <= 1 passes.
double excess(const Mat& got, const std::vector<double>& want, int n) {
  REQUIRE(size_t(got.size()) == want.size());
  const double bound = 4 * n * kU * largest(want);
  double worst = 0;
  for (Eigen::Index i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::fabs(double(got.data()[i]) - want[size_t(i)]) / bound);
  return worst;
}
std::vector<double> values(const Mat& m) { return std::vector<double>(m.data(), m.data() + m.size()); }

Attrs heads_attrs(const Case& c) { return {{"heads", c.H}, {"kv_heads", c.K}, {"head_dim", c.d}}; }
Attrs block_attrs(const Case& c, int cp, int q_rank, int kv_rank) {
  Attrs a = heads_attrs(c);
  a.insert({{"batch", c.B}, {"seq", c.S}, {"cp", cp}, {"q_rank", q_rank}, {"kv_rank", kv_rank}});
  return a;
}

// One cp layout of a case: every rank's qkv, kv (by attention_kv) and dout rows.
struct Ranks {
  int cp, T;
  std::vector<std::vector<int>> rows;
  std::vector<Mat> qkv, kv, dout;
};
Ranks ranks_of(const Case& c, int cp) {
  Ranks r{cp, c.B * c.S / cp, {}, {}, {}, {}};
  const int width = (c.H + 2 * c.K) * c.d;
  for (int i = 0; i < cp; ++i) {
    r.rows.push_back(rows_of(c, cp, i));
    r.qkv.push_back(gather(c.qkv, width, r.rows.back(), 0, width));
    r.dout.push_back(gather(c.dout, c.H * c.d, r.rows.back(), 0, c.H * c.d));
    Mat kv = unwritten(r.T, 2 * c.K * c.d);
    run_kernel(cp_op("attention_kv", heads_attrs(c)), {&r.qkv.back()}, {&kv});
    r.kv.push_back(kv);
  }
  return r;
}

struct Attended {
  Mat out, lse;
};
// Block (q_rank, kv_rank); `kv_rank_attr` is the kv_rank the op is told (the right one but in test 5).
Attended block(const Case& c, const Ranks& r, int q_rank, int kv_rank, int kv_rank_attr) {
  Attended a{unwritten(r.T, c.H * c.d), unwritten(r.T, c.H)};
  run_kernel(cp_op("attention_block", block_attrs(c, r.cp, q_rank, kv_rank_attr)),
             {&r.qkv[size_t(q_rank)], &r.kv[size_t(kv_rank)]}, {&a.out, &a.lse});
  return a;
}
Attended merge(const Attended& a, const Attended& b) {
  Attended m{unwritten(a.out.rows(), a.out.cols()), unwritten(a.lse.rows(), a.lse.cols())};
  run_kernel(cp_op("attention_merge", {}), {&a.out, &a.lse, &b.out, &b.lse}, {&m.out, &m.lse});
  return m;
}
// q_rank's blocks against the kv ranks in `order`, merged one after another from the first; with
// wrong_offset every block is told kv_rank = q_rank (the bug test 5 plants).
Attended ring_forward(const Case& c, const Ranks& r, int q_rank, const std::vector<int>& order,
                      bool wrong_offset = false) {
  Attended acc = block(c, r, q_rank, order[0], wrong_offset ? q_rank : order[0]);
  for (size_t i = 1; i < order.size(); ++i)
    acc = merge(acc, block(c, r, q_rank, order[i], wrong_offset ? q_rank : order[i]));
  return acc;
}
std::vector<int> in_order(int cp) {
  std::vector<int> v;
  for (int i = 0; i < cp; ++i) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE(
    "attention_kv and attention_kv_backward copy the k, v columns out and put dq, dkv side by side, bit for bit") {
  const Case& c = cp_oracle::cases[0];
  const int width = (c.H + 2 * c.K) * c.d, T = c.B * c.S;
  const Mat qkv = gather(c.qkv, width, rows_of(c, 1, 0), 0, width);
  Mat kv = unwritten(T, 2 * c.K * c.d);
  run_kernel(cp_op("attention_kv", heads_attrs(c)), {&qkv}, {&kv});
  CHECK(bit_equal(kv, Mat(qkv.rightCols(2 * c.K * c.d))));

  const Mat dq = qkv.leftCols(c.H * c.d) * -2.0f, dkv = kv * 3.0f;
  Mat dqkv = unwritten(T, width);
  run_kernel(cp_op("attention_kv_backward", heads_attrs(c)), {&dq, &dkv}, {&dqkv});
  CHECK(bit_equal(Mat(dqkv.leftCols(c.H * c.d)), dq));
  CHECK(bit_equal(Mat(dqkv.rightCols(2 * c.K * c.d)), dkv));
}

TEST_CASE(
    "ring attention forward: each rank's blocks merged over all kv ranks equal PyTorch's causal attention at its "
    "rows") {
  for (const Case& c : cp_oracle::cases)
    for (int cp : c.cps) {
      INFO("case " << std::string(c.name) << ", cp " << cp);
      const Ranks r = ranks_of(c, cp);
      for (int q = 0; q < cp; ++q) {
        CAPTURE(q);
        const Attended got = ring_forward(c, r, q, in_order(cp));
        expect_close("out", got.out, gather(c.out, c.H * c.d, r.rows[size_t(q)], 0, c.H * c.d), n_forward(c, cp));
        expect_close("lse", got.lse, gather(c.lse, c.H, r.rows[size_t(q)], 0, c.H), n_forward(c, cp));
      }
    }
}

TEST_CASE("ring attention backward: block gradients summed over ranks equal PyTorch autograd's dq, dk, dv") {
  for (const Case& c : cp_oracle::cases)
    for (int cp : c.cps) {
      INFO("case " << std::string(c.name) << ", cp " << cp);
      const Ranks r = ranks_of(c, cp);
      const int width = (c.H + 2 * c.K) * c.d, Hd = c.H * c.d, KVd = 2 * c.K * c.d, n = n_backward(c, cp);
      std::vector<Mat> dq(size_t(cp), Mat::Zero(r.T, Hd)), dkv(size_t(cp), Mat::Zero(r.T, KVd));
      for (int q = 0; q < cp; ++q) {
        const Attended fwd = ring_forward(c, r, q, in_order(cp));  // the merged out and lse the backward takes
        for (int k = 0; k < cp; ++k) {
          Mat dq_block = unwritten(r.T, Hd), dkv_block = unwritten(r.T, KVd);
          run_kernel(cp_op("attention_block_backward", block_attrs(c, cp, q, k)),
                     {&r.qkv[size_t(q)], &r.kv[size_t(k)], &fwd.out, &fwd.lse, &r.dout[size_t(q)]},
                     {&dq_block, &dkv_block});
          dq[size_t(q)] += dq_block;    // over kv ranks 0..cp-1: the ring's local dq accumulation
          dkv[size_t(k)] += dkv_block;  // over q ranks 0..cp-1: what travels back to kv_rank
        }
      }
      for (int i = 0; i < cp; ++i) {
        CAPTURE(i);
        const std::vector<int>& rows = r.rows[size_t(i)];
        expect_close("dq", dq[size_t(i)], gather(c.dqkv, width, rows, 0, Hd), n);
        expect_close("dk", Mat(dkv[size_t(i)].leftCols(KVd / 2)), gather(c.dqkv, width, rows, Hd, KVd / 2), n);
        expect_close("dv", Mat(dkv[size_t(i)].rightCols(KVd / 2)), gather(c.dqkv, width, rows, Hd + KVd / 2, KVd / 2),
                     n);
        Mat dqkv = unwritten(r.T, width);  // the whole qkv gradient of the rank, as the layer assembles it
        run_kernel(cp_op("attention_kv_backward", heads_attrs(c)), {&dq[size_t(i)], &dkv[size_t(i)]}, {&dqkv});
        CHECK(excess(Mat(dqkv.leftCols(Hd)), gather(c.dqkv, width, rows, 0, Hd), n) <= 1);
        CHECK(excess(Mat(dqkv.rightCols(KVd)), gather(c.dqkv, width, rows, Hd, KVd), n) <= 1);
      }
    }
}

TEST_CASE("cp = 1: one block is the attention kernel bit for bit, its backward the attention_backward kernel") {
  for (const Case& c : cp_oracle::cases) {
    INFO("case " << std::string(c.name));
    const Ranks r = ranks_of(c, 1);  // the identity layout: rows 0..B S - 1
    const int width = (c.H + 2 * c.K) * c.d, Hd = c.H * c.d, KVd = 2 * c.K * c.d, T = r.T;
    Attrs whole = heads_attrs(c);
    whole.insert({{"batch", c.B}, {"seq", c.S}});  // what `attention` takes; cp, q_rank, kv_rank default to 1, 0, 0

    Mat want = unwritten(T, Hd);
    run_kernel(cp_op("attention", whole), {&r.qkv[0]}, {&want});
    Attended got{unwritten(T, Hd), unwritten(T, c.H)};
    run_kernel(cp_op("attention_block", whole), {&r.qkv[0], &r.kv[0]}, {&got.out, &got.lse});
    // The same score chains (the GEMM), the same softmax arithmetic in the same key order, the
    // same P V chains: the same bits.
    CHECK(bit_equal(got.out, want));

    Mat want_dqkv = unwritten(T, width);
    run_kernel(cp_op("attention_backward", whole), {&r.qkv[0], &r.dout[0]}, {&want_dqkv});
    Mat dq = unwritten(T, Hd), dkv = unwritten(T, KVd), dqkv = unwritten(T, width);
    run_kernel(cp_op("attention_block_backward", whole), {&r.qkv[0], &r.kv[0], &got.out, &got.lse, &r.dout[0]},
               {&dq, &dkv});
    run_kernel(cp_op("attention_kv_backward", heads_attrs(c)), {&dq, &dkv}, {&dqkv});
    // Not the same bits: attention_backward forms P = exp(s - m) / l and D = rowsum(P dP), the
    // block P = exp(s - lse) and D = rowsum(dO O). Both are within the bound of the exact value.
    for (int col = 0; col < width; col += c.d) {
      const int head = col / c.d;
      INFO((head < c.H ? "dq head " : head < c.H + c.K ? "dk head " : "dv head ") << head);
      expect_close("dqkv", Mat(dqkv.middleCols(col, c.d)), values(Mat(want_dqkv.middleCols(col, c.d))),
                   n_backward(c, 1), 2);
    }
  }
}

TEST_CASE(
    "a longer sequence (S 256: threaded, two of attention's 128-row blocks): cp = 1 and 2 match the attention "
    "kernels") {
  // No oracle numbers here: random inputs, compared with the `attention` kernels (checked against
  // finite differences in test_numerics_gradients.cpp) within twice the header's bound.
  Case c;
  c.name = "B2 S256 H4 K2 d32";
  c.B = 2, c.S = 256, c.H = 4, c.K = 2, c.d = 32;
  const int width = (c.H + 2 * c.K) * c.d, Hd = c.H * c.d, KVd = 2 * c.K * c.d, T = c.B * c.S;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int i = 0; i < T * width; ++i) c.qkv.push_back(2 * u(rng));  // scores of a few units: a peaked softmax
  for (int i = 0; i < T * Hd; ++i) c.dout.push_back(u(rng));
  Attrs whole = heads_attrs(c);
  whole.insert({{"batch", c.B}, {"seq", c.S}});
  const Mat qkv = gather(c.qkv, width, in_order(T), 0, width), dout = gather(c.dout, Hd, in_order(T), 0, Hd);
  Mat want = unwritten(T, Hd), want_dqkv = unwritten(T, width);
  run_kernel(cp_op("attention", whole), {&qkv}, {&want});
  run_kernel(cp_op("attention_backward", whole), {&qkv, &dout}, {&want_dqkv});

  for (int cp : {1, 2}) {
    CAPTURE(cp);
    // Megatron's layout, written out here: rank i holds chunks i and 2 cp - 1 - i of every sequence.
    const int chunk = c.S / (2 * cp);
    std::vector<int> all;
    for (int i = 0; i < cp; ++i)
      for (int b = 0; b < c.B; ++b)
        for (int part : {i, 2 * cp - 1 - i})
          for (int j = 0; j < chunk; ++j) all.push_back(b * c.S + part * chunk + j);
    c.cps = {cp};
    c.rows = {all};
    const Ranks r = ranks_of(c, cp);
    std::vector<Mat> dq(size_t(cp), Mat::Zero(r.T, Hd)), dkv(size_t(cp), Mat::Zero(r.T, KVd));
    for (int q = 0; q < cp; ++q) {
      const Attended fwd = ring_forward(c, r, q, in_order(cp));
      const std::vector<double> want_out = gather(values(want), Hd, r.rows[size_t(q)], 0, Hd);
      if (cp == 1)
        CHECK(bit_equal(fwd.out, want));
      else
        expect_close("out", fwd.out, want_out, n_forward(c, cp), 2);
      for (int k = 0; k < cp; ++k) {
        Mat dq_block = unwritten(r.T, Hd), dkv_block = unwritten(r.T, KVd);
        run_kernel(cp_op("attention_block_backward", block_attrs(c, cp, q, k)),
                   {&r.qkv[size_t(q)], &r.kv[size_t(k)], &fwd.out, &fwd.lse, &r.dout[size_t(q)]},
                   {&dq_block, &dkv_block});
        dq[size_t(q)] += dq_block;
        dkv[size_t(k)] += dkv_block;
      }
    }
    for (int i = 0; i < cp; ++i) {
      Mat dqkv = unwritten(r.T, width);
      run_kernel(cp_op("attention_kv_backward", heads_attrs(c)), {&dq[size_t(i)], &dkv[size_t(i)]}, {&dqkv});
      const std::vector<int>& rows = r.rows[size_t(i)];
      expect_close("dq", Mat(dqkv.leftCols(Hd)), gather(values(want_dqkv), width, rows, 0, Hd), n_backward(c, cp), 2);
      expect_close("dkv", Mat(dqkv.rightCols(KVd)), gather(values(want_dqkv), width, rows, Hd, KVd), n_backward(c, cp),
                   2);
    }
  }
}

TEST_CASE(
    "attention_merge: the merge order changes only rounding, and a side with no allowed key (-inf) drops out exactly") {
  const Case& c = cp_oracle::cases[0];
  SUBCASE("orders") {
    const int cp = 4;
    const Ranks r = ranks_of(c, cp);
    for (int q = 0; q < cp; ++q) {
      CAPTURE(q);
      const Attended first = ring_forward(c, r, q, {0, 1, 2, 3});
      for (const std::vector<int>& order : {std::vector<int>{3, 2, 1, 0}, std::vector<int>{1, 3, 0, 2}}) {
        const Attended other = ring_forward(c, r, q, order);
        expect_close("out", other.out, values(first.out), n_forward(c, cp), 2);
        expect_close("lse", other.lse, values(first.lse), n_forward(c, cp), 2);
      }
      const Attended a = block(c, r, q, 0, 0), b = block(c, r, q, cp - 1, cp - 1);
      const Attended ab = merge(a, b), ba = merge(b, a);
      CHECK(bit_equal(ab.lse, ba.lse));  // hi + log1p(exp(lo - hi)) is symmetric in its arguments
      // the weighted sum: two products and a sum, which the compiler may contract to an FMA
      expect_close("out swapped", ba.out, values(ab.out), 2);
    }
  }
  SUBCASE("a block with masked rows (cp 2: rank 0's first chunk precedes all of rank 1's tokens)") {
    const int cp = 2, c_len = c.S / (2 * cp);
    const Ranks r = ranks_of(c, cp);
    const Attended diag = block(c, r, 0, 0, 0), off = block(c, r, 0, 1, 1);
    int masked = 0;
    for (int t = 0; t < r.T; ++t)
      for (int h = 0; h < c.H; ++h) {
        const bool first_chunk = t % (c.S / cp) < c_len;
        CHECK((off.lse(t, h) == -INFINITY) == first_chunk);
        if (!first_chunk) continue;
        ++masked;
        for (int j = h * c.d; j < (h + 1) * c.d; ++j) CHECK(off.out(t, j) == 0.0f);
      }
    CHECK(masked == c.B * c_len * c.H);
    for (const Attended& m : {merge(diag, off), merge(off, diag)})
      for (int t = 0; t < r.T; ++t) {
        if (t % (c.S / cp) >= c_len) continue;
        CHECK(bit_equal(Mat(m.out.row(t)), Mat(diag.out.row(t))));
        CHECK(bit_equal(Mat(m.lse.row(t)), Mat(diag.lse.row(t))));
      }
  }
  SUBCASE("-inf on one side, on both, and merging in place") {
    // Row 0: a masked; row 1: b masked; row 2: both masked; row 3: neither. H = 2, d = 2.
    Mat la(4, 2), lb(4, 2), oa(4, 4), ob(4, 4);
    la << -INFINITY, -INFINITY, 0.5f, -1.0f, -INFINITY, -INFINITY, 1.0f, 2.0f;
    lb << 0.25f, 3.0f, -INFINITY, -INFINITY, -INFINITY, -INFINITY, 1.0f, -3.0f;
    oa.setZero();
    oa.row(1) << 1, 2, 3, 4;
    oa.row(3) << 1, 1, 1, 1;
    ob.setZero();
    ob.row(0) << 5, 6, 7, 8;
    ob.row(3) << 3, 3, 3, 3;
    Attended m{unwritten(4, 4), unwritten(4, 2)};
    run_kernel(cp_op("attention_merge", {}), {&oa, &la, &ob, &lb}, {&m.out, &m.lse});
    CHECK(bit_equal(Mat(m.out.row(0)), Mat(ob.row(0))));
    CHECK(bit_equal(Mat(m.lse.row(0)), Mat(lb.row(0))));
    CHECK(bit_equal(Mat(m.out.row(1)), Mat(oa.row(1))));
    CHECK(bit_equal(Mat(m.lse.row(1)), Mat(la.row(1))));
    CHECK(bit_equal(Mat(m.out.row(2)), Mat(Mat::Zero(1, 4))));
    CHECK(m.lse(2, 0) == -INFINITY);
    CHECK(m.lse(2, 1) == -INFINITY);
    // Row 3: log(e + e) = 1 + log 2, weights 1/2, 1/2 (head 0); log(e^2 + e^-3), weights by softmax (head 1).
    const double l1 = std::log(std::exp(2.0) + std::exp(-3.0)), w1 = std::exp(2.0 - l1);
    CHECK(double(m.lse(3, 0)) == rel(1 + std::log(2.0), 4 * kU));
    CHECK(double(m.lse(3, 1)) == rel(l1, 4 * kU));
    // out: up to 8 roundings (exp, log1p, the weights, the products, the sum), relative to the value
    for (int j = 0; j < 2; ++j) CHECK(double(m.out(3, j)) == rel(2.0, 8 * kU));
    for (int j = 2; j < 4; ++j) CHECK(double(m.out(3, j)) == rel(w1 * 1 + (1 - w1) * 3, 8 * kU));

    Mat in_out = oa, in_lse = la;  // out aliasing out_a, lse aliasing lse_a: the same result
    run_kernel(cp_op("attention_merge", {}), {&in_out, &in_lse, &ob, &lb}, {&in_out, &in_lse});
    CHECK(bit_equal(in_out, m.out));
    CHECK(bit_equal(in_lse, m.lse));
  }
}

TEST_CASE("a wrong causal offset (an off-diagonal block told kv_rank = q_rank) is far outside the tolerance") {
  const Case& c = cp_oracle::cases[0];
  for (int cp : {2, 4}) {
    const Ranks r = ranks_of(c, cp);
    for (int q = 0; q < cp; ++q) {
      CAPTURE(cp);
      CAPTURE(q);
      const std::vector<double> want = gather(c.out, c.H * c.d, r.rows[size_t(q)], 0, c.H * c.d);
      const double right = excess(ring_forward(c, r, q, in_order(cp)).out, want, n_forward(c, cp));
      const double wrong = excess(ring_forward(c, r, q, in_order(cp), true).out, want, n_forward(c, cp));
      CAPTURE(right);
      CAPTURE(wrong);
      CHECK(right <= 1);
      CHECK(wrong > 1000);  // the wrong mask moves out by O(1), the bound is ~1e-5 of it
    }
  }
}

TEST_CASE("bad context-parallel attributes and shapes are refused with the op and the reason named") {
  const Case& c = cp_oracle::cases[0];  // B 2, S 16, H 4, K 2, d 4
  const int width = (c.H + 2 * c.K) * c.d, Hd = c.H * c.d, KVd = 2 * c.K * c.d;
  const int T2 = c.B * c.S / 2;
  const Mat qkv = Mat::Zero(T2, width), kv = Mat::Zero(T2, KVd), lse_in = Mat::Zero(T2, c.H), o_in = Mat::Zero(T2, Hd);
  Mat out(T2, Hd), lse(T2, c.H), dq(T2, Hd), dkv(T2, KVd);

  auto refused = [](const std::string& message, const std::string& fn, const std::string& reason) {
    INFO(message);
    CHECK(message.find("op test." + fn + " (" + fn + "): ") == 0);
    CHECK(message.find(reason) != std::string::npos);
  };
  auto with = [&](std::initializer_list<std::pair<const std::string, double>> changes) {
    Attrs a = block_attrs(c, 2, 0, 1);
    for (const auto& [k, v] : changes) a[k] = v;
    return a;
  };
  const std::string fw = "attention_block", bw = "attention_block_backward";
  CHECK(kernel_error(cp_op(fw, with({})), {&qkv, &kv}, {&out, &lse}) == "");

  refused(kernel_error(cp_op(fw, with({{"cp", 3}})), {&qkv, &kv}, {&out, &lse}), fw,
          "seq 16 is not divisible by 2 cp = 6 (the load-balanced chunks)");
  refused(kernel_error(cp_op(fw, with({{"q_rank", 2}})), {&qkv, &kv}, {&out, &lse}), fw,
          "attribute q_rank must be an integer in [0, cp) = [0, 2), got 2");
  refused(kernel_error(cp_op(fw, with({{"kv_rank", -1}})), {&qkv, &kv}, {&out, &lse}), fw,
          "attribute kv_rank must be an integer in [0, cp) = [0, 2), got -1");
  refused(kernel_error(cp_op(bw, with({{"kv_rank", 0.5}})), {&qkv, &kv, &o_in, &lse_in, &o_in}, {&dq, &dkv}), bw,
          "attribute kv_rank must be an integer in [0, cp) = [0, 2), got 0.5");
  Attrs no_rank = with({});
  no_rank.erase("kv_rank");
  refused(kernel_error(cp_op(fw, no_rank), {&qkv, &kv}, {&out, &lse}), fw, "attribute kv_rank is required when cp > 1");
  refused(kernel_error(cp_op(fw, with({{"kv_heads", 3}})), {&qkv, &kv}, {&out, &lse}), fw,
          "heads 4 is not a multiple of kv_heads 3");
  Attrs no_dim = with({});
  no_dim.erase("head_dim");
  refused(kernel_error(cp_op(fw, no_dim), {&qkv, &kv}, {&out, &lse}), fw,
          "attribute head_dim must be a positive integer, got 0");
  refused(kernel_error(cp_op(fw, with({{"cp", 0}})), {&qkv, &kv}, {&out, &lse}), fw,
          "attribute cp must be a positive integer, got 0");

  // The whole sequence's rows where a rank's B S / cp are expected (the layout mistake to catch).
  const Mat qkv_whole = Mat::Zero(c.B * c.S, width);
  refused(kernel_error(cp_op(fw, with({})), {&qkv_whole, &kv}, {&out, &lse}), fw,
          "qkv [32, 32] must be [batch * seq / cp, (heads + 2 kv_heads) * head_dim] = [16, 32]");
  const Mat kv_narrow = Mat::Zero(T2, KVd - c.d);
  refused(kernel_error(cp_op(fw, with({})), {&qkv, &kv_narrow}, {&out, &lse}), fw,
          "kv [16, 12] must be [batch * seq / cp, 2 kv_heads * head_dim] = [16, 16]");
  Mat lse_wide(T2, c.H + 1);
  refused(kernel_error(cp_op(fw, with({})), {&qkv, &kv}, {&out, &lse_wide}), fw,
          "lse [16, 5] must be [batch * seq / cp, heads] = [16, 4]");
  refused(kernel_error(cp_op(fw, with({})), {&qkv, &kv}, {&out}), fw, "takes 2 inputs and 2 outputs, got 2 and 1");
  refused(kernel_error(cp_op(bw, with({})), {&qkv, &kv, &o_in, &lse_wide, &o_in}, {&dq, &dkv}), bw,
          "lse [16, 5] must be [batch * seq / cp, heads] = [16, 4]");
  refused(kernel_error(cp_op(bw, with({})), {&qkv, &kv, &o_in, &lse_in}, {&dq, &dkv}), bw,
          "takes 5 inputs and 2 outputs, got 4 and 2");

  const std::string merge_fn = "attention_merge";
  const Mat lse_short = Mat::Zero(T2 - 1, c.H), o_odd = Mat::Zero(T2, Hd + 1);
  refused(kernel_error(cp_op(merge_fn, {}), {&o_in, &lse_in, &o_in, &lse_short}, {&out, &lse}), merge_fn,
          "lse_b [15, 4] must be [rows, heads] like lse_a = [16, 4]");
  refused(kernel_error(cp_op(merge_fn, {}), {&o_odd, &lse_in, &o_in, &lse_in}, {&out, &lse}), merge_fn,
          "out_a [16, 17]: columns are not a multiple of lse_a's [16, 4] (heads)");

  const Mat qkv_narrow = Mat::Zero(T2, width - 1);
  refused(kernel_error(cp_op("attention_kv", heads_attrs(c)), {&qkv_narrow}, {&dkv}), "attention_kv",
          "qkv [16, 31] must be [rows, (heads + 2 kv_heads) * head_dim] = [16, 32]");
  Mat dqkv_narrow(T2, width - 1);
  refused(kernel_error(cp_op("attention_kv_backward", heads_attrs(c)), {&dq, &dkv}, {&dqkv_narrow}),
          "attention_kv_backward", "dqkv [16, 31] must be [dq rows, (heads + 2 kv_heads) * head_dim] = [16, 32]");
}
