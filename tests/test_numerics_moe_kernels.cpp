// The mixture-of-experts kernels (sim/numerics/kernels_moe.cpp) against an outside oracle: PyTorch
// in float64, gradients by torch.autograd of a reference built from torch.topk, softmax, one_hot,
// index_add and reshape/permute (tests/oracle/moe_kernels.py). Its printed numbers are
// tests/oracle/moe_kernels_expected.hpp; to regenerate after changing the script or a kernel's rule:
//     /usr/bin/python3 tests/oracle/moe_kernels.py > tests/oracle/moe_kernels_expected.hpp
// so this test needs no Python to run.
//
// Tolerance rule: the kernels compute in fp32 from fp32 inputs, the reference in float64 from the
// same values. A value computed through a chain of n fp32 roundings is off by at most about n u
// times its terms' magnitudes (u = 2^-24). Each element of an output may be off by 4 n u times the
// largest reference value of that output: the largest, not its own, because cancellation (the
// p_i (u_i - s) of dlogits) leaves a small element with the absolute error of the large terms that
// made it. n is the longest chain feeding any output here: softmax (E-term sum, exp, divide), the
// normalisation (k-term sum, divide), the h-term dot product dg, k-term sums over choices and the
// expert's multiply-add: n = E + h + 2k + 8. A reference 0 gets the same absolute allowance: some
// are 0 by cancellation, not structure (normalize = 1 with the identity expert: a token whose
// choices are all kept gets y = x exactly, so its dlogits row is 0 in exact arithmetic and ~1e-8
// in fp32). Copies (dispatch, split, join) and the route's ids are compared bit for bit.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "kernel_calls.hpp"
#include "numerics/kernels.hpp"
#include "oracle/moe_kernels_expected.hpp"

using namespace tpsim;
using numerics::Mat;

namespace {


using test::expect_close;
using test::kernel_error;
using test::run_kernel;

Op moe_op(const std::string& fn, std::map<std::string, double> attrs) { return test::kernel_op(fn, std::move(attrs)); }

Mat mat(const std::vector<float>& v, int rows, int cols) {
  REQUIRE(v.size() == size_t(rows) * size_t(cols));
  Mat m(rows, cols);
  std::copy(v.begin(), v.end(), m.data());
  return m;
}
template <typename T>
Mat mat_of_ints(const std::vector<T>& v, int rows, int cols) {
  REQUIRE(v.size() == size_t(rows) * size_t(cols));
  Mat m(rows, cols);
  for (size_t i = 0; i < v.size(); ++i) m.data()[i] = float(v[i]);
  return m;
}
// An output as the kernel receives it, filled with NaN so an element it fails to write shows.
Mat unwritten(int64_t rows, int64_t cols) { return Mat::Constant(rows, cols, NAN); }

void expect_exact(const std::string& what, const Mat& got, const std::vector<double>& want) {
  REQUIRE(size_t(got.size()) == want.size());
  for (Eigen::Index i = 0; i < got.size(); ++i) {
    INFO(what << " [" << i / got.cols() << ", " << i % got.cols() << "]");
    CHECK(double(got.data()[i]) == want[size_t(i)]);
  }
}

bool bit_equal(const Mat& a, const Mat& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * size_t(a.size())) == 0;
}

}  // namespace

TEST_CASE("moe_route: the k largest logits, largest first, ties to the lower id, against torch.topk") {
  const auto& c = moe_oracle::route;
  const Mat logits = mat(c.logits, c.r, c.E);
  Mat experts = unwritten(c.r, c.k);
  run_kernel(moe_op("moe_route", {{"top_k", c.k}}), {&logits}, {&experts});
  for (int t = 0; t < c.r; ++t)
    for (int j = 0; j < c.k; ++j) {
      INFO("token " << t << ", choice " << j);
      const int want = c.experts[size_t(t * c.k + j)], topk = c.topk_experts[size_t(t * c.k + j)];
      CHECK(experts(t, j) == float(want));                      // stable-sort order among ties (lower id first)
      CHECK(logits(t, int(experts(t, j))) == logits(t, topk));  // the same logits torch.topk picked
    }
  // torch.topk's own order among ties is not ours (why the reference is a stable sort); on the row
  // without ties the indices agree.
  const int no_tie = c.r - 1;
  for (int j = 0; j < c.k; ++j) CHECK(experts(no_tie, j) == float(c.topk_experts[size_t(no_tie * c.k + j)]));
  CHECK(c.experts != c.topk_experts);
}

TEST_CASE(
    "moe_dispatch and moe_combine, forward and backward, against PyTorch autograd, with choices over capacity "
    "dropped") {
  for (const moe_oracle::Chain& c : moe_oracle::chains) {
    const int rows = c.E * c.C, n = c.E + c.h + 2 * c.k + 8;
    const Mat x = mat(c.x, c.r, c.h), logits = mat(c.logits, c.r, c.E), dy = mat(c.dy, c.r, c.h);
    const Mat scale = mat(c.scale, rows, c.h), bias = mat(c.bias, rows, c.h);
    INFO("chain " << std::string(c.name));

    Mat experts = unwritten(c.r, c.k);
    run_kernel(moe_op("moe_route", {{"top_k", c.k}}), {&logits}, {&experts});
    REQUIRE(bit_equal(experts, mat_of_ints(c.experts, c.r, c.k)));

    const std::map<std::string, double> slots{{"experts", c.E}, {"capacity", c.C}};
    Mat buf = unwritten(rows, c.h);
    run_kernel(moe_op("moe_dispatch", slots), {&x, &experts}, {&buf});
    expect_exact("buf", buf, c.buf);
    int used = 0;
    for (int s = 0; s < rows; ++s) used += std::any_of(&buf(s, 0), &buf(s, 0) + c.h, [](float v) { return v != 0; });
    CHECK(used == c.r * c.k - c.dropped);
    CHECK(c.dropped > 0);

    for (const moe_oracle::ChainResult& want : c.results) {
      CAPTURE(want.normalize);
      CAPTURE(want.affine);
      std::map<std::string, double> attrs = slots;
      attrs["normalize"] = want.normalize;
      // The expert: identity, or elementwise affine (its bias puts non-zero rows in unused slots).
      const Mat ybuf = want.affine ? Mat(buf.cwiseProduct(scale) + bias) : buf;

      Mat y = unwritten(c.r, c.h);
      run_kernel(moe_op("moe_combine", attrs), {&ybuf, &logits, &experts}, {&y});
      expect_close("y", y, want.y, n);

      Mat dybuf = unwritten(rows, c.h), dlogits = unwritten(c.r, c.E);
      run_kernel(moe_op("moe_combine_backward", attrs), {&dy, &ybuf, &logits, &experts}, {&dybuf, &dlogits});
      expect_close("dybuf", dybuf, want.dybuf, n);
      expect_close("dlogits", dlogits, want.dlogits, n);

      const Mat dbuf = want.affine ? Mat(dybuf.cwiseProduct(scale)) : dybuf;
      Mat dx = unwritten(c.r, c.h);
      run_kernel(moe_op("moe_dispatch_backward", slots), {&dbuf, &experts}, {&dx});
      expect_close("dx", dx, want.dx, n);
    }
  }
}

TEST_CASE("moe_split_experts and moe_join_experts match a torch reshape/permute and undo each other bit for bit") {
  const auto& c = moe_oracle::split;
  const std::map<std::string, double> attrs{{"groups", c.G}, {"local_experts", c.El}};
  const Mat buf = mat(c.buf, c.G * c.El * c.C, c.h);
  std::vector<Mat> parts(size_t(c.El), unwritten(c.G * c.C, c.h));
  std::vector<Mat*> part_out;
  std::vector<const Mat*> part_in;
  for (Mat& p : parts) part_out.push_back(&p), part_in.push_back(&p);
  run_kernel(moe_op("moe_split_experts", attrs), {&buf}, part_out);
  const size_t per_part = size_t(c.G * c.C * c.h);
  for (int le = 0; le < c.El; ++le)
    expect_exact(
        "split part", parts[size_t(le)],
        std::vector<double>(c.parts.begin() + long(le * per_part), c.parts.begin() + long((le + 1) * per_part)));

  // join(split(buf)) == buf
  Mat joined = unwritten(buf.rows(), buf.cols());
  run_kernel(moe_op("moe_join_experts", attrs), part_in, {&joined});
  CHECK(bit_equal(joined, buf));

  // split(join(parts)) == parts, on other parts (the oracle's, negated and scaled)
  std::vector<Mat> other(size_t(c.El)), again(size_t(c.El), unwritten(c.G * c.C, c.h));
  std::vector<const Mat*> other_in;
  std::vector<Mat*> again_out;
  for (int le = 0; le < c.El; ++le) {
    other[size_t(le)] = parts[size_t(le)] * -3.0f;
    other_in.push_back(&other[size_t(le)]);
    again_out.push_back(&again[size_t(le)]);
  }
  Mat rejoined = unwritten(buf.rows(), buf.cols());
  run_kernel(moe_op("moe_join_experts", attrs), other_in, {&rejoined});
  run_kernel(moe_op("moe_split_experts", attrs), {&rejoined}, again_out);
  for (int le = 0; le < c.El; ++le) CHECK(bit_equal(again[size_t(le)], other[size_t(le)]));
}

TEST_CASE("bad MoE inputs are refused with the op and the reason named") {
  const int r = 3, h = 2, E = 4, C = 2;
  const Mat x = Mat::Ones(r, h), logits = Mat::Zero(r, E), dy = Mat::Ones(r, h);
  const Mat experts = mat_of_ints(std::vector<int>{0, 1, 2, 3, 1, 0}, r, 2);
  Mat buf(E * C, h), y(r, h), dlogits(r, E), ids(r, 2);
  const std::map<std::string, double> slots{{"experts", E}, {"capacity", C}};

  auto refused = [](const std::string& message, const std::string& fn, const std::string& reason) {
    INFO(message);
    CHECK(message.find("op test." + fn + " (" + fn + "): ") == 0);
    CHECK(message.find(reason) != std::string::npos);
  };
  for (float bad : {4.0f, -1.0f, 1.5f, float(NAN)}) {
    Mat wrong = experts;
    wrong(2, 1) = bad;
    refused(kernel_error(moe_op("moe_dispatch", slots), {&x, &wrong}, {&buf}), "moe_dispatch",
            "at [2, 1] is not an integer in [0, 4)");
    refused(kernel_error(moe_op("moe_combine", slots), {&buf, &logits, &wrong}, {&y}), "moe_combine",
            "at [2, 1] is not an integer in [0, 4)");
  }
  Mat short_buf(E * C - 1, h);
  refused(kernel_error(moe_op("moe_dispatch", slots), {&x, &experts}, {&short_buf}), "moe_dispatch",
          "buf has 7 rows, expected experts * capacity = 4 * 2 = 8");
  refused(kernel_error(moe_op("moe_dispatch_backward", slots), {&short_buf, &experts}, {&y}), "moe_dispatch_backward",
          "dbuf has 7 rows");
  refused(kernel_error(moe_op("moe_dispatch", {{"experts", E}}), {&x, &experts}, {&buf}), "moe_dispatch",
          "attribute capacity must be a positive integer, got 0");
  refused(kernel_error(moe_op("moe_combine", {{"experts", E}, {"capacity", C}, {"normalize", 2}}),
                       {&buf, &logits, &experts}, {&y}),
          "moe_combine", "attribute normalize must be 0 or 1, got 2");
  const Mat narrow = Mat::Zero(r, E - 1);
  refused(kernel_error(moe_op("moe_combine", slots), {&buf, &narrow, &experts}, {&y}), "moe_combine",
          "logits [3, 3] must have one column per expert (4)");
  Mat dybuf(E * C, h), small_dlogits(r, E - 1);
  refused(kernel_error(moe_op("moe_combine_backward", slots), {&dy, &buf, &logits, &experts}, {&dybuf, &small_dlogits}),
          "moe_combine_backward", "dlogits [3, 3] differs from logits [3, 4]");
  refused(kernel_error(moe_op("moe_combine_backward", slots), {&dy, &buf, &logits, &experts}, {&dybuf}),
          "moe_combine_backward", "takes 4 inputs and 2 outputs, got 4 and 1");

  refused(kernel_error(moe_op("moe_route", {{"top_k", 5}}), {&logits}, {&ids}), "moe_route",
          "top_k 5 exceeds the number of experts (logits columns) 4");
  Mat nan_logits = logits;
  nan_logits(1, 3) = NAN;
  refused(kernel_error(moe_op("moe_route", {{"top_k", 2}}), {&nan_logits}, {&ids}), "moe_route", "logit [1, 3] is NaN");

  const std::map<std::string, double> ep{{"groups", 2}, {"local_experts", 2}};
  Mat whole(8, h), part0(4, h), part1(4, h), odd(7, h);
  refused(kernel_error(moe_op("moe_split_experts", ep), {&whole}, {&part0}), "moe_split_experts",
          "has 1 per-expert tensors, local_experts is 2");
  refused(kernel_error(moe_op("moe_split_experts", ep), {&odd}, {&part0, &part1}), "moe_split_experts",
          "rows are not a multiple of groups * local_experts = 4");
  Mat part_wide(4, h + 1);
  refused(kernel_error(moe_op("moe_join_experts", ep), {&part0, &part_wide}, {&whole}), "moe_join_experts",
          "expert 1's tensor [4, 3] must be [groups * capacity, h] = [4, 2]");
}
