// The nccl-tests log reader behind `tpsim calibrate`: a real all_reduce_perf log (2 x 8 H100, its
// values read off the file by eye), real together-nccl-tests logs (checked against the reference
// CSV copied from the same runs), `tpsim collective` output, an older layout, and the lines it
// must refuse at their line number.
#include <doctest/doctest.h>

#include "nccl_tables.hpp"
#include "relative.hpp"

#include <fstream>
#include <numeric>
#include <sstream>

#include "tpsim/calibrate.hpp"

using namespace tpsim;

namespace {

const std::string kLogs = std::string(TPSIM_TEST_DATA) + "/nccl-tests/";

std::string error_of(const std::string& text) {
  try {
    parse_nccl_tests_log(text, "x.log");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

double mean_busbw(const NcclTestsLog& log) {
  double sum = 0;
  for (const NcclTestsRow& r : log.rows) sum += r.busbw;
  return sum / double(log.rows.size());
}

}  // namespace

TEST_CASE("the a3mega all_reduce_perf log: ranks, hosts, out-of-place columns, footer") {
  const NcclTestsLog log = read_nccl_tests_log(kLogs + "a3mega-2x8-h100-all-reduce.log");
  CHECK(log.threads == 1);
  CHECK(log.gpus_per_thread == 1);
  REQUIRE(log.ranks.size() == 16);
  CHECK(log.hosts() == std::vector<std::string>{"ztan-mig-235z", "ztan-mig-gq73"});
  CHECK(log.ranks_per_host() == 8);
  CHECK(log.ranks[9].host == "ztan-mig-gq73");
  CHECK(log.ranks[9].device == 1);
  CHECK(log.ranks[9].gpu == "NVIDIA H100 80GB HBM3");
  REQUIRE(log.rows.size() == 31);   // 8 B to 8 GiB, x2
  const NcclTestsRow& first = log.rows.front();
  CHECK(first.line == 24);
  CHECK(first.bytes == 8);
  CHECK(first.count == 2);
  CHECK(first.type == "float");
  CHECK(first.redop == "sum");
  CHECK(first.root == -1);
  CHECK(first.time_us == rel(135.8, 1e-12));   // out-of-place; in-place says 123.5
  const NcclTestsRow& last = log.rows.back();
  CHECK(last.bytes == 8589934592.0);
  CHECK(last.time_us == rel(47535, 1e-12));
  CHECK(last.algbw == rel(180.71, 1e-12));
  CHECK(last.busbw == rel(338.82, 1e-12));
  REQUIRE(log.avg_busbw);
  CHECK(*log.avg_busbw == rel(70.742, 1e-12));
  // (The footer is the mean busbw of the out-of-place and in-place columns together, 70.7415 by
  // hand; the out-of-place mean alone is 70.71: the reader keeps the footer as printed.)
  CHECK(std::fabs(mean_busbw(log) - *log.avg_busbw) > 0.01);
  // No program name in this log: the columns say it (redop sum, root -1, busbw/algbw = 2 x 15/16).
  CHECK(!log.named_op);
  REQUIRE(infer_collective(log, 16));
  CHECK(*infer_collective(log, 16) == CollectiveOp::all_reduce);
}

TEST_CASE("the together-nccl-tests logs name their program and hold the reference CSV's rows") {
  struct Case {
    const char* file;
    const char* tag;
    CollectiveOp op;
  };
  for (const Case& c : {Case{"together-h100-1node-all-reduce-ring.log", "allreduce_ring", CollectiveOp::all_reduce},
                        Case{"together-h100-1node-all-gather-ring.log", "allgather_ring", CollectiveOp::all_gather},
                        Case{"together-h100-1node-reduce-scatter-ring.log", "reducescatter_ring", CollectiveOp::reduce_scatter}}) {
    CAPTURE(c.file);
    const NcclTestsLog log = read_nccl_tests_log(kLogs + c.file);
    REQUIRE(log.named_op);
    CHECK(*log.named_op == c.op);
    CHECK(log.named_op_line == 3);   // "# Collective test starting: X_perf", under the source line
    CHECK(log.gpus_per_thread == 8);
    CHECK(log.ranks.size() == 8);
    CHECK(log.ranks_per_host() == 8);
    // Every row of data/reference/together_h100_1node_ring.csv is a row of the log, same time and busbw.
    for (const NcclRow& want : nccl_rows("together_h100_1node_ring.csv", c.tag)) {
      CAPTURE(want.bytes);
      const auto it = std::find_if(log.rows.begin(), log.rows.end(), [&](const NcclTestsRow& r) { return r.bytes == want.bytes; });
      REQUIRE(it != log.rows.end());
      CHECK(it->time_us == rel(want.time_us, 1e-12));
      CHECK(it->busbw == rel(want.busbw, 1e-12));
    }
    REQUIRE(log.avg_busbw);
  }
  // all_gather_perf prints four 0 B rows (sizes below 8 ranks x 4 B), then 128 B with count 4 (per rank).
  const NcclTestsLog ag = read_nccl_tests_log(kLogs + "together-h100-1node-all-gather-ring.log");
  CHECK(ag.rows[0].bytes == 0);
  CHECK(ag.rows[4].bytes == 128);
  CHECK(ag.rows[4].count == 4);
  CHECK(ag.rows[4].redop == "none");
}

TEST_CASE("tpsim collective's own output reads as an nccl-tests log") {
  // The golden transcript of `tpsim collective -t cluster-h100-ndr --gpus 16 --op all_gather -b 1M -e 256M -f 16`.
  std::ifstream in(std::string(TPSIM_TEST_DATA) + "/golden/collective-cluster-h100-ndr-allgather.txt");
  std::stringstream text;
  for (std::string line; std::getline(in, line);)
    if (line.rfind("[exit", 0) != 0) text << line << "\n";   // the transcript's exit status line
  const NcclTestsLog log = parse_nccl_tests_log(text.str(), "golden");
  REQUIRE(log.named_op);
  CHECK(*log.named_op == CollectiveOp::all_gather);
  CHECK(log.ranks.size() == 16);
  CHECK(log.hosts() == std::vector<std::string>{"node0", "node1"});
  REQUIRE(log.rows.size() == 3);   // 1 MiB x16 to 256 MiB
  CHECK(log.rows[0].bytes == 1048576);
  CHECK(log.rows[1].bytes == 16777216);
  CHECK(log.rows[2].bytes == 268435456);
  CHECK(log.rows[2].redop == "none");
  // busbw = algbw x 15/16 for an all-gather over 16 GPUs (nccl-tests' factor), within the print's rounding.
  CHECK(log.rows[2].busbw == rel(log.rows[2].algbw * 15 / 16, 1e-3));
  // In-place repeats out-of-place in tpsim's output, so the footer (nccl-tests averages both
  // columns) is the out-of-place mean, within the print's 0.01 GB/s.
  REQUIRE(log.avg_busbw);
  CHECK(std::fabs(mean_busbw(log) - *log.avg_busbw) < 0.01);
}

TEST_CASE("older layouts: no root column, or neither redop nor root, and 'error' for #wrong") {
  // nccl-tests 2.0-2.10 (2019-2021): redop but no root, a numeric error column, "Rank" without Group.
  const std::string v20 =
      "# nThread 1 nGpus 4 minBytes 8 maxBytes 1048576 step: 2(factor) warmup iters: 5 iters: 20 validation: 1\n"
      "#\n"
      "# Using devices\n"
      "#   Rank  0 Pid  12345 on      host1 device  0 [0x06] Tesla V100-SXM2-16GB\n"
      "#   Rank  1 Pid  12345 on      host1 device  1 [0x07] Tesla V100-SXM2-16GB\n"
      "#   Rank  2 Pid  12345 on      host1 device  2 [0x0a] Tesla V100-SXM2-16GB\n"
      "#   Rank  3 Pid  12345 on      host1 device  3 [0x0b] Tesla V100-SXM2-16GB\n"
      "#\n"
      "#                                                     out-of-place                       in-place          \n"
      "#       size         count    type   redop     time   algbw   busbw  error     time   algbw   busbw  error\n"
      "#        (B)    (elements)                     (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       \n"
      "           8             2   float     sum    21.53    0.00    0.00  0e+00    21.27    0.00    0.00  0e+00\n"
      "     1048576        262144   float     sum    42.10   24.91   37.36  0e+00    41.90   25.03   37.54  0e+00\n"
      "# Out of bounds values : 0 OK\n"
      "# Avg bus bandwidth    : 18.68 \n";
  const NcclTestsLog a = parse_nccl_tests_log(v20, "v20.log");
  REQUIRE(a.rows.size() == 2);
  CHECK(a.ranks.size() == 4);
  CHECK(a.ranks[3].gpu == "Tesla V100-SXM2-16GB");
  CHECK(a.rows[1].time_us == rel(42.10, 1e-12));   // out-of-place, not in-place's 41.90
  CHECK(a.rows[1].busbw == rel(37.36, 1e-12));
  CHECK(a.rows[1].redop == "sum");
  CHECK(a.rows[1].root == -1);
  // 37.36 / 24.91 = 1.4998 = 2 x 3/4: all-reduce over 4 GPUs.
  CHECK(*infer_collective(a, 4) == CollectiveOp::all_reduce);

  const std::string bare =
      "$ ./build/all_gather_perf -b 8 -e 128M -f 2 -g 2\n"
      "#       size         count    type     time   algbw   busbw  error     time   algbw   busbw  error\n"
      "    33554432       4194304   float   512.00   65.54   32.77  0e+00   510.00   65.79   32.90  0e+00\n";
  const NcclTestsLog b = parse_nccl_tests_log(bare, "bare.log");
  REQUIRE(b.named_op);   // from the command line
  CHECK(*b.named_op == CollectiveOp::all_gather);
  CHECK(b.named_op_line == 1);
  REQUIRE(b.rows.size() == 1);
  CHECK(b.rows[0].time_us == rel(512.0, 1e-12));
  CHECK(b.rows[0].redop.empty());
  CHECK(b.ranks.empty());
}

TEST_CASE("lines the reader cannot read are errors at their line, saying what was expected") {
  const std::string header = "#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong\n";
  const std::string row = "     1048576        262144     float     sum      -1    46.52   22.54   39.44      0    46.44   22.58   39.51      0\n";
  CHECK(error_of(header + row).empty());
  // NCCL_DEBUG=INFO lines interleave with the table: recognised, not rows.
  CHECK(error_of(header + "host:123:123 [0] NCCL INFO Channel 00/32 : 0 1 2 3\n" + row).empty());

  const std::string garbage = error_of(header + row + "this is not a row\n");
  CHECK(garbage.find("x.log:3:1: ") != std::string::npos);
  CHECK(garbage.find("expected a result row of 13 fields") != std::string::npos);

  const std::string bad_time = error_of(header + "     1048576        262144     float     sum      -1    fast   22.54   39.44      0    46.44   22.58   39.51      0\n");
  CHECK(bad_time.find("x.log:2:1: ") != std::string::npos);
  CHECK(bad_time.find("column 'time' (field 6): expected a number >= 0, got 'fast'") != std::string::npos);

  const std::string no_header = error_of(row);
  CHECK(no_header.find("x.log:1:1: ") != std::string::npos);
  CHECK(no_header.find("column header") != std::string::npos);

  CHECK(error_of(header).find("no result rows") != std::string::npos);
  CHECK(error_of("# just a comment\n").find("no nccl-tests table") != std::string::npos);
  CHECK(error_of(header + row + "# Avg bus bandwidth : lots\n").find("x.log:3:1: ") != std::string::npos);
  // One log, one collective.
  const std::string two = error_of("# Collective test starting: all_reduce_perf\n# Collective test starting: all_gather_perf\n" + header + row);
  CHECK(two.find("x.log:2:1: ") != std::string::npos);
  CHECK(two.find("names all_gather here and all_reduce on line 1") != std::string::npos);

  try {
    read_nccl_tests_log(kLogs + "no-such.log");
    FAIL("a missing file must be refused");
  } catch (const InputError& e) {
    CHECK(e.file == kLogs + "no-such.log");
    CHECK(e.problem.find("cannot read") != std::string::npos);
  }
}
