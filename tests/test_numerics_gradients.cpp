// Finite-difference gradient checks of every backward kernel of the numerics (kernels.cpp) and of
// the GEMM's two backward products (dX = dY W^T, dW = X^T dY, as layers.cpp lowers them).
//
// The kernels are fp32. For each one the test writes the forward straight from its formula in
// double (ref_*), checks the fp32 forward kernel against it (so the reference is the function the
// kernel computes), then takes L(x) = sum(G ⊙ forward(x)) for a random upstream gradient G and
// compares the fp32 backward kernel with central differences (L(x + h e_i) - L(x - h e_i)) / 2h of
// the double reference, element by element.
//
// Comparison: the normwise relative error ||kernel - fd||_2 / ||fd||_2 against a tolerance derived
// from fp32 rounding. A value computed through a chain of n fp32 roundings, each of terms whose
// magnitudes sum to M, is off by at most gamma_n * M, gamma_n = n u / (1 - n u), u = 2^-24
// (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., section 3.1). Each check
// writes its n and its magnitude matrix M (the formula with every term made non-negative), so
// tolerance = gamma_n ||M|| / ||fd||: cancellation in the data widens it exactly as much as it can
// widen the rounding error, no more.
//
// The finite differences themselves are in double with h = 2^-17 on inputs of magnitude <= 3:
// their truncation error (h^2 |f'''| / 6) and rounding (~1e-16 |L| / h) are ~1e-10 relative. Each
// check measures it: fd at h and at 2h differ by ~3x the truncation error at h ("spread"), and the
// spread must be below tolerance / 30, so the fd error is under 1% of what the comparison allows.
// GCC 12 reports a false -Wmaybe-uninitialized inside the AVX-512 intrinsics of Eigen's double
// reductions (_mm512_extractf64x4_pd, GCC bug 105593); set before any header includes them.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <doctest/doctest.h>

#include "kernel_calls.hpp"
#include "relative.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "numerics/kernels.hpp"

using namespace tpsim;
using numerics::Mat;
using Md = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

constexpr double kU = 0x1p-24;   // fp32 unit roundoff

double gamma(int n) { return n * kU / (1 - n * kU); }

// Uniform fp32 values in [lo, hi]: the kernel and the double reference see the same numbers.
Mat random_mat(std::mt19937& rng, int64_t rows, int64_t cols, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> u(lo, hi);
  Mat m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = u(rng);
  return m;
}

Md dbl(const Mat& m) { return m.cast<double>(); }

using test::kernel_op;
using test::run_kernel;

double dot(const Md& g, const Md& y) { return (g.array() * y.array()).sum(); }

// Central differences of `loss` at x, at h and at 2h (see the header for what the spread bounds).
struct Fd {
  Md grad;
  double spread = 0;   // ||fd(h) - fd(2h)|| / ||fd(h)||
};
Fd central_differences(const Md& x0, const std::function<double(const Md&)>& loss, double h = 0x1p-17) {
  Md x = x0, g(x0.rows(), x0.cols()), g2(x0.rows(), x0.cols());
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const double xi = x.data()[i];
    auto at = [&](double v) {
      x.data()[i] = v;
      return loss(x);
    };
    const double p1 = at(xi + h), m1 = at(xi - h), p2 = at(xi + 2 * h), m2 = at(xi - 2 * h);
    g.data()[i] = (p1 - m1) / (2 * h);
    g2.data()[i] = (p2 - m2) / (4 * h);
    x.data()[i] = xi;
  }
  return {g, (g - g2).norm() / g.norm()};
}

double error(const Md& got, const Md& want) { return (got - want).norm() / want.norm(); }

// gamma_n ||M|| / ||want||: the derived normwise bound (header).
double tolerance(int n, const Md& magnitude, const Md& want) { return gamma(n) * magnitude.norm() / want.norm(); }

// The fp32 kernel's gradient against finite differences, within gamma_n ||M|| / ||fd||.
void expect_gradient(const std::string& what, const Mat& kernel, const Fd& fd, int n, const Md& magnitude) {
  REQUIRE(fd.grad.norm() > 0);
  const double tol = tolerance(n, magnitude, fd.grad), err = error(dbl(kernel), fd.grad);
  INFO(what << ": ||kernel - fd|| / ||fd|| = " << err << ", tolerance " << tol << " (n " << n << "), fd spread "
            << fd.spread);
  CHECK(fd.spread <= tol / 30);
  CHECK(err <= tol);
  CHECK_FALSE(error(1.01 * dbl(kernel), fd.grad) <= tol);   // and the comparison can fail: 1% off is caught
}

// The fp32 forward kernel against the double reference, same rule.
void expect_forward(const std::string& what, const Mat& kernel, const Md& reference, int n, const Md& magnitude) {
  const double tol = tolerance(n, magnitude, reference), err = error(dbl(kernel), reference);
  INFO(what << " forward: ||kernel - reference|| / ||reference|| = " << err << ", tolerance " << tol);
  CHECK(err <= tol);
}

// ---------------------------------------------------------------------------------------------
// Double-precision references, straight from the formulas. The kernels keep their constants in
// fp32 (eps, the GELU coefficients); the references use those same fp32 values, so both compute
// one function and only rounding separates them.
double f32(double v) { return double(float(v)); }

// LayerNorm per row: xhat = (x - mean) / sqrt(var + eps), var the biased (1/c) variance;
// y = xhat * w + b.
Md ref_xhat(const Md& x, double eps) {
  Md xhat(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const double mean = x.row(i).mean();
    const double var = (x.row(i).array() - mean).square().mean();
    xhat.row(i) = (x.row(i).array() - mean) / std::sqrt(var + eps);
  }
  return xhat;
}
Md ref_layernorm(const Md& x, const Md& w, const Md& b, double eps) {
  return (ref_xhat(x, eps).array().rowwise() * w.row(0).array()).rowwise() + b.row(0).array();
}

// layernorm_backward's dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w: rstd and xhat carry
// the forward's 2c + 6 roundings, the two means c each more, then 4 ops: n = 4c + 10, on the
// terms' magnitudes rstd (|g| + mean|g| + |xhat| mean|g xhat|).
int layernorm_dx_chain(int64_t c) { return int(4 * c + 10); }
Md layernorm_dx_magnitude(const Md& x, const Md& w, const Md& dy, double eps) {
  const Md xhat = ref_xhat(x, eps);
  Md mag(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const double mean = x.row(i).mean(), rstd = 1 / std::sqrt((x.row(i).array() - mean).square().mean() + eps);
    const Eigen::ArrayXd g = (dy.row(i).array() * w.row(0).array()).transpose();
    const Eigen::ArrayXd xh = xhat.row(i).array().transpose();
    mag.row(i) = (rstd * (g.abs() + g.abs().mean() + xh.abs() * (g * xh).abs().mean())).transpose();
  }
  return mag;
}

// RMSNorm per row: x / sqrt(mean(x^2) + eps) * w.
Md ref_rmsnorm(const Md& x, const Md& w, double eps) {
  Md y(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i)
    y.row(i) = x.row(i).array() / std::sqrt(x.row(i).array().square().mean() + eps) * w.row(0).array();
  return y;
}

// GELU, tanh form: a/2 (1 + tanh(k (a + c a^3))), k = sqrt(2/pi), c = 0.044715 (as fp32 constants).
const double kGeluK = f32(std::sqrt(2.0 / M_PI)), kGeluC = f32(0.044715);
Md ref_gelu(const Md& a) {
  return a.unaryExpr([](double v) { return 0.5 * v * (1 + std::tanh(kGeluK * (v + kGeluC * v * v * v))); });
}

// SwiGLU: up * silu(gate), silu(g) = g / (1 + e^-g).
Md ref_swiglu(const Md& up, const Md& gate) {
  return up.array() * gate.array() / (1 + (-gate.array()).exp());
}

// Causal grouped-query attention over qkv [B s, (H + 2K) d]: out_h = softmax(q_h k_g^T / sqrt(d)) v_g
// with query head h reading kv head g = h / (H / K). `kv_of` and `causal` let tests plant a wrong
// head mapping or a missing mask.
struct AttnShape {
  int64_t H, K, d, s, B;
};
Md ref_attention(const Md& qkv, const AttnShape& a, bool causal = true,
                 const std::function<int64_t(int64_t)>& kv_of = {}) {
  Md out = Md::Zero(a.B * a.s, a.H * a.d);
  const double scale = 1 / std::sqrt(double(a.d));
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t h = 0; h < a.H; ++h) {
      const int64_t g = kv_of ? kv_of(h) : h / (a.H / a.K);
      for (int64_t t = 0; t < a.s; ++t) {
        const int64_t keys = causal ? t + 1 : a.s;
        std::vector<double> p(keys);
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < keys; ++j) {
          double sc = 0;
          for (int64_t e = 0; e < a.d; ++e) sc += qkv(b * a.s + t, h * a.d + e) * qkv(b * a.s + j, (a.H + g) * a.d + e);
          p[j] = scale * sc;
          m = std::max(m, p[j]);
        }
        for (double& v : p) sum += (v = std::exp(v - m));
        for (int64_t e = 0; e < a.d; ++e) {
          double o = 0;
          for (int64_t j = 0; j < keys; ++j) o += p[j] / sum * qkv(b * a.s + j, (a.H + a.K + g) * a.d + e);
          out(b * a.s + t, h * a.d + e) = o;
        }
      }
    }
  return out;
}

// Magnitudes for the attention backward's rounding bound: its terms made non-negative, with
// P the (non-negative) probabilities: |dP| = |dO| |V|^T, |D| = rowsum(P |dP|),
// |dS| = P (|dP| + |D|) / sqrt(d), then |dQ| = |dS| |K|, |dK| = sum_heads |dS|^T |Q|,
// |dV| = sum_heads P^T |dO|.
Md attention_magnitude(const Md& qkv, const Md& dout, const AttnShape& a) {
  Md mag = Md::Zero(qkv.rows(), qkv.cols());
  const double scale = 1 / std::sqrt(double(a.d));
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t h = 0; h < a.H; ++h) {
      const int64_t g = h / (a.H / a.K), r0 = b * a.s;
      const Md q = qkv.block(r0, h * a.d, a.s, a.d), k = qkv.block(r0, (a.H + g) * a.d, a.s, a.d),
               v = qkv.block(r0, (a.H + a.K + g) * a.d, a.s, a.d), dO = dout.block(r0, h * a.d, a.s, a.d);
      Md P = Md::Zero(a.s, a.s);
      for (int64_t t = 0; t < a.s; ++t) {
        const Eigen::RowVectorXd sc = scale * (q.row(t) * k.topRows(t + 1).transpose());
        const Eigen::RowVectorXd e = (sc.array() - sc.maxCoeff()).exp().matrix();
        P.row(t).head(t + 1) = e / e.sum();
      }
      const Md dP = dO.cwiseAbs() * v.cwiseAbs().transpose();
      Md dS(a.s, a.s);
      for (int64_t t = 0; t < a.s; ++t) {
        const double D = P.row(t).dot(dP.row(t));
        dS.row(t) = scale * (P.row(t).array() * (dP.row(t).array() + D)).matrix();
      }
      mag.block(r0, h * a.d, a.s, a.d) += dS * k.cwiseAbs();
      mag.block(r0, (a.H + g) * a.d, a.s, a.d) += dS.transpose() * q.cwiseAbs();
      mag.block(r0, (a.H + a.K + g) * a.d, a.s, a.d) += P.transpose() * dO.cwiseAbs();
    }
  return mag;
}

// Per-token cross-entropy of logits l [T, V] (vocab_start 0): log sum_j e^l_tj - l_t,target.
Md ref_cross_entropy(const Md& l, const std::vector<int>& targets) {
  Md loss(l.rows(), 1);
  for (Eigen::Index t = 0; t < l.rows(); ++t) {
    const double m = l.row(t).maxCoeff();
    loss(t, 0) = std::log((l.row(t).array() - m).exp().sum()) + m - l(t, targets[t]);
  }
  return loss;
}

}  // namespace

TEST_CASE("layernorm_backward: dx, dw, db against finite differences of a double LayerNorm") {
  std::mt19937 rng(11);
  const int64_t r = 4, c = 16;
  const Mat x = random_mat(rng, r, c), w = random_mat(rng, 1, c, 0.5f, 1.5f), b = random_mat(rng, 1, c),
            G = random_mat(rng, r, c);
  const Op fwd = kernel_op("layernorm", {{"eps", 1e-5}}), bwd = kernel_op("layernorm_backward", {{"eps", 1e-5}});
  const double eps = f32(1e-5);
  const Md X = dbl(x), W = dbl(w), B = dbl(b), Gd = dbl(G);

  // Forward: mean (c adds), variance (c), rstd (add, sqrt, divide), then 4 ops: a chain of 2c + 8.
  Mat y(r, c);
  run_kernel(fwd, {&x, &w, &b}, {&y});
  const Md Y = ref_layernorm(X, W, B, eps);
  const Md xhat = ref_xhat(X, eps);
  expect_forward("layernorm", y, Y, 2 * c + 8,
                 ((xhat.array().abs().rowwise() * W.row(0).array().abs()).rowwise() + B.row(0).array().abs()).matrix());

  Mat dx(r, c), dw(1, c), db(1, c);
  run_kernel(bwd, {&x, &w, &G}, {&dx, &dw, &db});
  const Fd fx = central_differences(X, [&](const Md& v) { return dot(Gd, ref_layernorm(v, W, B, eps)); });
  const Fd fw = central_differences(W, [&](const Md& v) { return dot(Gd, ref_layernorm(X, v, B, eps)); });
  const Fd fb = central_differences(B, [&](const Md& v) { return dot(Gd, ref_layernorm(X, W, v, eps)); });

  expect_gradient("layernorm dx", dx, fx, layernorm_dx_chain(c), layernorm_dx_magnitude(X, W, Gd, eps));
  // dw = sum over rows of dy xhat: xhat's 2c + 6 roundings, a product, r adds.
  expect_gradient("layernorm dw", dw, fw, 2 * c + 7 + r, (Gd.array() * xhat.array()).abs().colwise().sum().matrix());
  // db = sum over rows of dy: r adds.
  expect_gradient("layernorm db", db, fb, r, Gd.array().abs().colwise().sum().matrix());
}

TEST_CASE("a planted 1% error in a backward kernel's gradient fails the finite-difference comparison") {
  // The layernorm case above, with the kernel's dx scaled by 1.01 (a wrong constant in a formula
  // looks like this): the same comparison, same tolerance, must reject it; the unscaled passes.
  std::mt19937 rng(11);
  const int64_t r = 4, c = 16;
  const Mat x = random_mat(rng, r, c), w = random_mat(rng, 1, c, 0.5f, 1.5f), b = random_mat(rng, 1, c),
            G = random_mat(rng, r, c);
  const double eps = f32(1e-5);
  Mat dx(r, c), dw(1, c), db(1, c);
  run_kernel(kernel_op("layernorm_backward", {{"eps", 1e-5}}), {&x, &w, &G}, {&dx, &dw, &db});
  const Md X = dbl(x), W = dbl(w), B = dbl(b), Gd = dbl(G);
  const Fd fx = central_differences(X, [&](const Md& v) { return dot(Gd, ref_layernorm(v, W, B, eps)); });
  const double tol = tolerance(layernorm_dx_chain(c), layernorm_dx_magnitude(X, W, Gd, eps), fx.grad);
  CHECK(error(dbl(dx), fx.grad) <= tol);
  const Mat planted = dx * 1.01f;
  const double planted_error = error(dbl(planted), fx.grad);
  CHECK_FALSE(planted_error <= tol);
  // And it measures the planted error: 1.01 dx - fd = 0.01 fd + 1.01 (dx - fd), so the error is
  // 0.01 give or take 1.01 ||dx - fd|| / ||fd|| <= 1.01 tol.
  CHECK(planted_error == rel(0.01, 1.01 * tol / 0.01));
}

TEST_CASE("rmsnorm_backward: dx, dw against finite differences of a double RMSNorm") {
  std::mt19937 rng(12);
  const int64_t r = 5, c = 12;
  const Mat x = random_mat(rng, r, c), w = random_mat(rng, 1, c, 0.5f, 1.5f), G = random_mat(rng, r, c);
  const double eps = f32(1e-6);
  const Md X = dbl(x), W = dbl(w), Gd = dbl(G);

  Mat y(r, c);
  run_kernel(kernel_op("rmsnorm", {{"eps", 1e-6}}), {&x, &w}, {&y});
  const Md Y = ref_rmsnorm(X, W, eps);
  // mean of squares (c adds after c products), rrms (3), y (2): n = c + 6 on |y|.
  expect_forward("rmsnorm", y, Y, c + 6, Y.array().abs().matrix());

  Mat dx(r, c), dw(1, c);
  run_kernel(kernel_op("rmsnorm_backward", {{"eps", 1e-6}}), {&x, &w, &G}, {&dx, &dw});
  const Fd fx = central_differences(X, [&](const Md& v) { return dot(Gd, ref_rmsnorm(v, W, eps)); });
  const Fd fw = central_differences(W, [&](const Md& v) { return dot(Gd, ref_rmsnorm(X, v, eps)); });
  // dx = rrms (g - xhat mean(g xhat)): rrms c + 4 roundings, the mean c + 3 more, then 4 ops.
  Md mag_dx(r, c), xhat(r, c);
  for (int64_t i = 0; i < r; ++i) {
    const double rrms = 1 / std::sqrt(X.row(i).array().square().mean() + eps);
    xhat.row(i) = X.row(i) * rrms;
    const Eigen::ArrayXd g = (Gd.row(i).array() * W.row(0).array()).transpose();
    const Eigen::ArrayXd xh = xhat.row(i).array().transpose();
    mag_dx.row(i) = (rrms * (g.abs() + xh.abs() * (g * xh).abs().mean())).transpose();
  }
  expect_gradient("rmsnorm dx", dx, fx, 2 * c + 11, mag_dx);
  // dw = sum over rows of dy xhat: c + 5 for xhat, a product, r adds.
  expect_gradient("rmsnorm dw", dw, fw, c + 6 + r, (Gd.array() * xhat.array()).abs().colwise().sum().matrix());
}

TEST_CASE("gelu_backward against finite differences of a double tanh-GELU") {
  std::mt19937 rng(13);
  const Mat a = random_mat(rng, 6, 9, -3, 3), G = random_mat(rng, 6, 9);
  const Md A = dbl(a), Gd = dbl(G);
  Mat y(6, 9), da(6, 9);
  run_kernel(kernel_op("gelu"), {&a}, {&y});
  const Md Y = ref_gelu(A);
  const Md t = A.unaryExpr([](double v) { return std::tanh(kGeluK * (v + kGeluC * v * v * v)); });
  // The tanh argument takes 5 roundings; tanhf is within 2 ulp; its argument's relative error
  // reaches t scaled by z sech^2(z) <= 0.45; then 3 ops: n = 12 on a/2 (1 + |t|).
  expect_forward("gelu", y, Y, 12, (0.5 * A.array().abs() * (1 + t.array().abs())).matrix());
  run_kernel(kernel_op("gelu_backward"), {&a, &G}, {&da});
  const Fd fd = central_differences(A, [&](const Md& v) { return dot(Gd, ref_gelu(v)); });
  // da = dy (1/2 (1 + t) + a/2 (1 - t^2) k (1 + 3c a^2)): t as above (8), 1 - t^2 absolute error
  // ~3u on |t^2|, then ~10 ops: n = 20 on |dy| (1/2 (1 + |t|) + |a|/2 (1 + t^2) k (1 + 3c a^2)).
  const Md mag = (Gd.array().abs() * (0.5 * (1 + t.array().abs()) + 0.5 * A.array().abs() * (1 + t.array().square()) *
                                                                        kGeluK * (1 + 3 * kGeluC * A.array().square())))
                     .matrix();
  expect_gradient("gelu da", da, fd, 20, mag);
}

TEST_CASE("swiglu_backward: d(up), d(gate) against finite differences of a double SwiGLU") {
  std::mt19937 rng(14);
  const Mat up = random_mat(rng, 5, 8, -2, 2), gate = random_mat(rng, 5, 8, -3, 3), G = random_mat(rng, 5, 8);
  const Md U = dbl(up), Ga = dbl(gate), Gd = dbl(G);
  Mat y(5, 8), dup(5, 8), dgate(5, 8);
  run_kernel(kernel_op("swiglu"), {&up, &gate}, {&y});
  const Md Y = ref_swiglu(U, Ga);
  // expf within 1 ulp, then add, multiply, multiply, divide: n = 6 on |y|.
  expect_forward("swiglu", y, Y, 6, Y.array().abs().matrix());
  run_kernel(kernel_op("swiglu_backward"), {&up, &gate, &G}, {&dup, &dgate});
  const Fd fu = central_differences(U, [&](const Md& v) { return dot(Gd, ref_swiglu(v, Ga)); });
  const Fd fg = central_differences(Ga, [&](const Md& v) { return dot(Gd, ref_swiglu(U, v)); });
  const Md sig = (1 / (1 + (-Ga.array()).exp())).matrix();
  // d(up) = dy g sig: sig 3 roundings (exp, add, divide), 2 products: n = 5 on |dy g sig|.
  expect_gradient("swiglu d(up)", dup, fu, 5, (Gd.array() * Ga.array() * sig.array()).abs().matrix());
  // d(gate) = dy a sig (1 + g (1 - sig)): sig 3, 1 - sig absolute 4u, 6 ops: n = 10 on
  // |dy a sig| (1 + |g| (1 + sig)).
  const Md mag = ((Gd.array() * U.array() * sig.array()).abs() * (1 + Ga.array().abs() * (1 + sig.array()))).matrix();
  expect_gradient("swiglu d(gate)", dgate, fg, 10, mag);
}

TEST_CASE("attention_backward (causal, grouped-query) against finite differences of a double attention") {
  // 2 sequences of 5 tokens, 4 query heads over 2 kv heads of width 4 (1/sqrt(4) is exact in fp32).
  const AttnShape a{4, 2, 4, 5, 2};
  const std::map<std::string, double> attrs{{"heads", 4}, {"kv_heads", 2}, {"head_dim", 4}, {"seq", 5}, {"batch", 2}};
  std::mt19937 rng(15);
  const Mat qkv = random_mat(rng, a.B * a.s, (a.H + 2 * a.K) * a.d, -1.5f, 1.5f), G = random_mat(rng, a.B * a.s, a.H * a.d);
  const Md Q = dbl(qkv), Gd = dbl(G);

  Mat out(a.B * a.s, a.H * a.d), dqkv(qkv.rows(), qkv.cols());
  run_kernel(kernel_op("attention", attrs), {&qkv}, {&out});
  const Md O = ref_attention(Q, a);
  // Scores: d products and adds; softmax: max (exact), exp, s adds, divide; P V: s more. Every
  // output is a convex combination of v rows, so the magnitude is at most max|v| per element:
  // n = d + 2s + 4 on the matrix of max|v| (a bound on sum_j p_j |v_j|).
  const double vmax = Q.rightCols(a.K * a.d).cwiseAbs().maxCoeff();
  expect_forward("attention", out, O, int(a.d + 2 * a.s + 4), Md::Constant(O.rows(), O.cols(), vmax));

  run_kernel(kernel_op("attention_backward", attrs), {&qkv, &G}, {&dqkv});
  const Fd fd = central_differences(Q, [&](const Md& v) { return dot(Gd, ref_attention(v, a)); });
  // The longest chain: P (d + s + 4 roundings), dP = dO V^T (d), D = rowsum(P dP) (s), dS (3),
  // then dK sums dS^T Q over s tokens for each of the H/K query heads of its group:
  // n = 2d + 2s + 7 + s H/K, on the backward's terms made non-negative (attention_magnitude).
  const int n = int(2 * a.d + 2 * a.s + 7 + a.s * a.H / a.K);
  const Md mag = attention_magnitude(Q, Gd, a);
  expect_gradient("attention dqkv", dqkv, fd, n, mag);

  // The comparison tells the attention the kernel computes from near misses: the same finite
  // differences of a reference without the causal mask, or with query heads mapped to kv heads
  // round-robin (h % K) instead of in blocks (h / (H/K)), are far from the kernel's gradient.
  const double tol = tolerance(n, mag, fd.grad);
  const Fd no_mask = central_differences(Q, [&](const Md& v) { return dot(Gd, ref_attention(v, a, false)); });
  const Fd round_robin = central_differences(
      Q, [&](const Md& v) { return dot(Gd, ref_attention(v, a, true, [&](int64_t h) { return h % a.K; })); });
  CHECK_FALSE(error(dbl(dqkv), no_mask.grad) <= tol);
  CHECK_FALSE(error(dbl(dqkv), round_robin.grad) <= tol);
  CHECK(error(dbl(dqkv), round_robin.grad) > 0.1);
}

TEST_CASE("embedding_backward against finite differences of a double lookup (vocab shard, repeated ids)") {
  // This rank holds vocabulary rows [3, 9); tokens 0 and 11 belong to other ranks (zero output,
  // no gradient here); id 4 appears three times (its gradient is a sum of three rows).
  const std::vector<int> ids{4, 0, 7, 4, 11, 3, 8, 4};
  const int64_t T = int64_t(ids.size()), V = 6, c = 5, start = 3;
  std::mt19937 rng(16);
  Mat id(T, 1);
  for (int64_t t = 0; t < T; ++t) id(t, 0) = float(ids[size_t(t)]);
  const Mat table = random_mat(rng, V, c), G = random_mat(rng, T, c);
  const Md Tb = dbl(table), Gd = dbl(G);
  const auto lookup = [&](const Md& tab) {
    Md y = Md::Zero(T, c);
    for (int64_t t = 0; t < T; ++t)
      if (ids[size_t(t)] >= start && ids[size_t(t)] < start + V) y.row(t) = tab.row(ids[size_t(t)] - start);
    return y;
  };
  const Op fwd = kernel_op("embedding", {{"vocab_start", double(start)}});
  const Op bwd = kernel_op("embedding_backward", {{"vocab_start", double(start)}});
  Mat y(T, c), dtable(V, c);
  run_kernel(fwd, {&id, &table}, {&y});
  CHECK(error(dbl(y), lookup(Tb)) == 0);   // a copy: bit for bit
  run_kernel(bwd, {&id, &G}, {&dtable});
  const Fd fd = central_differences(Tb, [&](const Md& v) { return dot(Gd, lookup(v)); });
  // Scatter-add: a row is a sum of at most 3 dy rows (2 roundings); magnitude: the sum of |dy|.
  Md mag = Md::Zero(V, c);
  for (int64_t t = 0; t < T; ++t)
    if (ids[size_t(t)] >= start && ids[size_t(t)] < start + V) mag.row(ids[size_t(t)] - start) += Gd.row(t).cwiseAbs();
  expect_gradient("embedding dtable", dtable, fd, 2, mag);
  // Rows no token of this shard names (5, 6 -> local 2, 3) get exactly zero.
  CHECK(dtable.row(2).isZero(0));
  CHECK(dtable.row(3).isZero(0));
}

TEST_CASE("cross_entropy_backward against finite differences of a double mean cross-entropy") {
  // The loss pieces as the lowering chains them (row_max, sum_exp, target_logit, cross_entropy).
  // The backward kernel takes no per-token upstream gradient: its `scale` is the gradient of the
  // step's loss with respect to each token's loss (1/T for a mean), so L = scale * sum_t loss_t.
  const int64_t T = 4, V = 11;
  const std::vector<int> targets{3, 0, 10, 6};
  const double scale = 0.25;   // 1/T, exact in fp32
  std::mt19937 rng(17);
  const Mat logits = random_mat(rng, T, V, -3, 3);
  Mat tg(T, 1);
  for (int64_t t = 0; t < T; ++t) tg(t, 0) = float(targets[size_t(t)]);
  Mat m(T, 1), s(T, 1), z(T, 1), loss(T, 1), dl(T, V);
  run_kernel(kernel_op("row_max"), {&logits}, {&m});
  run_kernel(kernel_op("sum_exp"), {&logits, &m}, {&s});
  run_kernel(kernel_op("target_logit", {{"vocab_start", 0}}), {&logits, &tg}, {&z});
  run_kernel(kernel_op("cross_entropy"), {&m, &s, &z}, {&loss});
  const Md L = dbl(logits), ref = ref_cross_entropy(L, targets);
  // sum_exp: V exps within 1 ulp and V adds; log within 1 ulp; 2 adds: n = V + 4 on
  // 1 + |log s| + |m| + |z| (the log's error is absolute).
  Md mag(T, 1);
  for (int64_t t = 0; t < T; ++t)
    mag(t, 0) = 1 + std::abs(std::log(double(s(t, 0)))) + std::abs(double(m(t, 0))) + std::abs(double(z(t, 0)));
  expect_forward("cross_entropy", loss, ref, int(V + 4), mag);

  run_kernel(kernel_op("cross_entropy_backward", {{"vocab_start", 0}, {"scale", scale}}), {&logits, &m, &s, &tg}, {&dl});
  const Fd fd = central_differences(L, [&](const Md& v) { return scale * ref_cross_entropy(v, targets).sum(); });
  // dl = scale (e^(l - m) / s - onehot): s carries V + 1 roundings, exp 1, divide 1, subtract 1,
  // scale 1: n = V + 5 on scale (p + onehot).
  Md mag_dl(T, V);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < V; ++j)
      mag_dl(t, j) = scale * (std::exp(L(t, j) - L.row(t).maxCoeff()) / (L.row(t).array() - L.row(t).maxCoeff()).exp().sum() +
                              (j == targets[size_t(t)] ? 1 : 0));
  expect_gradient("cross_entropy dlogits", dl, fd, int(V + 5), mag_dl);
}

TEST_CASE("GEMM backward: dX = dY W^T and dW = X^T dY (as layers.cpp lowers them) against finite differences") {
  // Shapes that fill no register tile (6 x 16) evenly, so edge tiles are exercised.
  const int64_t T = 13, in = 7, out = 19;
  std::mt19937 rng(18);
  const Mat x = random_mat(rng, T, in), w = random_mat(rng, in, out), G = random_mat(rng, T, out);
  const Md X = dbl(x), W = dbl(w), Gd = dbl(G);
  // Each element is one chain of k fused multiply-adds (gemm.cpp): |error| <= gamma_k sum_k |a||b|.
  Mat y(T, out);
  numerics::gemm({T, out, in}, x, w, y);
  expect_forward("gemm", y, X * W, int(in), X.cwiseAbs() * W.cwiseAbs());

  Mat dx(T, in), dw(in, out);
  numerics::gemm({T, in, out, false, true}, G, w, dx);   // layers.cpp: bwd_data, trans_b
  numerics::gemm({in, out, T, true, false}, x, G, dw);   // layers.cpp: bwd_weight, trans_a
  const Fd fx = central_differences(X, [&](const Md& v) { return dot(Gd, v * W); });
  const Fd fw = central_differences(W, [&](const Md& v) { return dot(Gd, X * v); });
  expect_gradient("gemm dX", dx, fx, int(out), Gd.cwiseAbs() * W.cwiseAbs().transpose());
  expect_gradient("gemm dW", dw, fw, int(T), X.cwiseAbs().transpose() * Gd.cwiseAbs());

  // Accumulating (micro-batches): dW_old + X^T dY, the chain started from dW_old (one term more).
  const Mat old = random_mat(rng, in, out);
  Mat acc = old;
  numerics::gemm({in, out, T, true, false, true}, x, G, acc);
  Fd f_acc = fw;
  f_acc.grad += dbl(old);
  expect_gradient("gemm dW accumulated", acc, f_acc, int(T + 1),
                  (dbl(old).cwiseAbs() + X.cwiseAbs().transpose() * Gd.cwiseAbs()).eval());
}

TEST_CASE("sigmoid_scale_backward (a shared expert's gate): dy, dg against finite differences") {
  std::mt19937 rng(21);
  const Mat y = random_mat(rng, 6, 9, -2, 2), g = random_mat(rng, 6, 1, -3, 3), G = random_mat(rng, 6, 9);
  const Md Y = dbl(y), Gl = dbl(g), Gd = dbl(G);
  // out = sigmoid(g) y, row by row
  auto ref = [](const Md& yv, const Md& gv) {
    Md o(yv.rows(), yv.cols());
    for (Eigen::Index i = 0; i < yv.rows(); ++i) o.row(i) = yv.row(i) / (1 + std::exp(-gv(i, 0)));
    return o;
  };
  Mat out(6, 9), dy(6, 9), dg(6, 1);
  run_kernel(kernel_op("sigmoid_scale"), {&y, &g}, {&out});
  // sigmoid: exp, add, divide (3 roundings), then one product: n = 4 on |out|.
  expect_forward("sigmoid_scale", out, ref(Y, Gl), 4, ref(Y, Gl).array().abs().matrix());
  run_kernel(kernel_op("sigmoid_scale_backward"), {&y, &g, &G}, {&dy, &dg});
  const Fd fy = central_differences(Y, [&](const Md& v) { return dot(Gd, ref(v, Gl)); });
  const Fd fg = central_differences(Gl, [&](const Md& v) { return dot(Gd, ref(Y, v)); });
  const Md sig = (1 / (1 + (-Gl.array()).exp())).matrix();
  Md mag_dy(6, 9), mag_dg(6, 1);
  for (Eigen::Index i = 0; i < 6; ++i) {
    mag_dy.row(i) = (Gd.row(i).array() * sig(i, 0)).abs().matrix();
    mag_dg(i, 0) = sig(i, 0) * (1 + sig(i, 0)) * (Gd.row(i).array() * Y.row(i).array()).abs().sum();
  }
  // dy = sig dout: n = 4; dg = sig (1 - sig) sum_j dout_j y_j: sig 3, 1 - sig absolute, a 9-term sum
  // and two products: n = 3 + 2 + 9 + 2 = 16 on sig (1 + sig) sum |dout y|.
  expect_gradient("sigmoid_scale dy", dy, fy, 4, mag_dy);
  expect_gradient("sigmoid_scale dg", dg, fg, 16, mag_dg);
}

TEST_CASE("every backward kernel in the registry is covered here") {
  // A new *_backward kernel must get a finite-difference check in this file, or one against
  // PyTorch autograd (the MoE dispatch and combine: test_numerics_moe_kernels.cpp; the context-parallel
  // attention blocks: test_numerics_cp_kernels.cpp).
  const std::vector<std::string> covered{"layernorm_backward", "rmsnorm_backward", "gelu_backward", "swiglu_backward",
                                         "attention_backward", "embedding_backward", "cross_entropy_backward",
                                         "moe_dispatch_backward", "moe_combine_backward", "sigmoid_scale_backward",
                                         "attention_kv_backward", "attention_block_backward"};
  int backward = 0;
  for (const std::string& name : numerics::kernel_names()) {
    if (name.size() < 9 || name.substr(name.size() - 9) != "_backward") continue;
    ++backward;
    INFO(name);
    CHECK(std::find(covered.begin(), covered.end(), name) != covered.end());
  }
  CHECK(backward == int(covered.size()));
}
