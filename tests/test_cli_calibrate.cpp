// `tpsim calibrate` as a user runs it: a real nccl-tests log against dgx-h100 writes a topology
// that `tpsim validate` accepts and that holds the fitted values; `tpsim collective`'s own output
// fitted back on the preset it came from gives the preset's constants; bad inputs exit 2 in one line.
#include <doctest/doctest.h>

#include "cli_runner.hpp"
#include "relative.hpp"

#include <cstdlib>
#include <filesystem>
#include <string>

#include "tpsim/spec.hpp"

namespace {

const std::string kTpsim = TPSIM_BINARY;
const std::string kLogs = std::string(TPSIM_TEST_DATA) + "/nccl-tests/";
const std::string kTopologies = std::string(TPSIM_TEST_DATA) + "/../../topologies/";

struct TempDir {
  std::string path;
  TempDir() {
    char dir[] = "/tmp/tpsim-calibrate-cli-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    path = dir;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("tpsim calibrate LOG -t dgx-h100 -o x.yaml writes a topology that loads") {
  TempDir dir;
  const std::string yaml = dir.path + "/x.yaml";
  const Output o = run_shell(kTpsim + " calibrate " + kLogs + "together-h100-1node-all-reduce-ring.log -t dgx-h100 --algo ring -o " + yaml);
  CAPTURE(o.out);
  REQUIRE(o.status == 0);
  // 4 rows (512 B, 1 KiB, 512 KiB, 1 MiB) are noise; of the 27 left, 15 are within 1.3x the 34.79 us
  // floor, 7 (128 MiB - 8 GiB) double their time with the size, 5 (4 - 64 MiB) are in between.
  CHECK(o.out.find("22 of 31 rows fitted (15 latency, 7 bandwidth), 5 mid-size predicted") != std::string::npos);
  CHECK(o.out.find("4194304          53.09        55.67    +4.9%        53.97    +1.7%  predicted, not fitted: mid-size") !=
        std::string::npos);
  CHECK(o.out.find("  fitted: bandwidth\n") != std::string::npos);
  CHECK(o.out.find("skipped: noise: slower than 1048576 B (46.52 us)") != std::string::npos);   // the 69.21 us 512 KiB row
  CHECK(o.out.find("# wrote " + yaml) != std::string::npos);

  const Output v = run_shell(kTpsim + " validate " + yaml);
  CAPTURE(v.out);
  CHECK(v.status == 0);
  const tpsim::Topology t = tpsim::load_topology(yaml);
  CHECK(t.name == "dgx-h100-calibrated");
  // The values the fit printed: 20.27 us and 0.8167 (test_calibrate_holdout checks what they predict).
  CHECK(o.out.find("collectives.launch_latency     22.00 us -> 20.27 us   (range 0.00 us - 34.79 us; on 15 latency rows)") !=
        std::string::npos);
  CHECK(t.collectives.launch_latency == rel(20.27e-6, 1e-9));
  CHECK(t.intra.efficiency == rel(0.8167, 1e-9));
  // The run the file is for.
  const Output r = run_shell(kTpsim + " collective -t " + yaml + " --algo ring -b 8G -e 8G");
  CHECK(r.status == 0);
}

TEST_CASE("tpsim collective's output, fitted back on its own preset, gives the preset's constants") {
  TempDir dir;
  const std::string log = dir.path + "/sim.log";
  REQUIRE(run_shell(kTpsim + " collective -t dgx-h100 --op all_gather --algo ring -b 1K -e 1G -f 4 > " + log).status == 0);
  const Output o = run_shell(kTpsim + " calibrate " + log + " -t dgx-h100 --algo ring -o " + dir.path + "/back.yaml");
  CAPTURE(o.out);
  REQUIRE(o.status == 0);
  // 1 KiB - 1 GiB x4: 7 rows within 1.3x the 32.81 us floor, 256 MiB and 1 GiB bandwidth-bound.
  CHECK(o.out.find(": all_gather, ring, 8 GPUs (1 node x 8), 9 of 11 rows fitted (7 latency, 2 bandwidth), 2 mid-size predicted") !=
        std::string::npos);
  const tpsim::Topology t = tpsim::load_topology(dir.path + "/back.yaml");
  // 22 us and 0.818 (topologies/dgx-h100.yaml), to the printed times' 2 decimals.
  CHECK(std::fabs(t.collectives.launch_latency - 22e-6) < 0.02e-6);
  CHECK(std::fabs(t.intra.efficiency - 0.818) < 2e-4);
}

TEST_CASE("tpsim calibrate refuses bad inputs in one line, exit 2") {
  TempDir dir;
  struct Case {
    std::string args, expect;
  };
  const std::string empty = dir.path + "/empty.log";
  REQUIRE(run_shell("printf '# nothing here\\n' > " + empty).status == 0);
  const std::string bad_row = dir.path + "/bad-row.log";
  REQUIRE(run_shell("head -20 " + kLogs + "a3mega-2x8-h100-all-reduce.log > " + bad_row + " && echo 'not a row' >> " + bad_row).status == 0);
  for (const Case& c : {
           Case{kLogs + "no-such.log -t dgx-h100", "no-such.log: cannot read this nccl-tests log"},
           Case{empty + " -t dgx-h100", "empty.log: no nccl-tests table"},
           Case{bad_row + " -t dgx-h100", "bad-row.log:21:1: expected a '#' comment or nccl-tests' column header"},
           Case{kLogs + "a3mega-2x8-h100-all-reduce.log -t dgx-h100",
                "16 ranks (2 nodes x 8) do not fit on 'dgx-h100' (1 node x 8 GPUs)"},
           Case{kLogs + "together-h100-1node-all-reduce-ring.log -t dgx-h100 --fit nic.latency", "no log spans nodes"},
           Case{kLogs + "together-h100-1node-all-reduce-ring.log -t dgx-h100 --collective all_gather",
                "the log says all_reduce, --collective says all_gather"},
       }) {
    const Output o = run_shell(kTpsim + " calibrate " + c.args);
    CAPTURE(c.args);
    CAPTURE(o.out);
    CHECK(o.status == 2);
    CHECK(o.out.find(c.expect) != std::string::npos);
    CHECK(o.out.rfind("tpsim: error: ", 0) == 0);
    CHECK(o.out.find('\n') == o.out.size() - 1);   // one line
  }
}

TEST_CASE("tpsim calibrate checks -o before it fits, and never writes over an input or half a file") {
  TempDir dir;
  const std::string log = dir.path + "/ring.log", topology = dir.path + "/mine.yaml", notes = dir.path + "/notes.md";
  REQUIRE(run_shell("cp " + kLogs + "together-h100-1node-all-reduce-ring.log " + log + " && cp " + kTopologies +
                    "dgx-h100.yaml " + topology + " && printf 'keep me\\n' > " + notes)
              .status == 0);
  const std::string command = kTpsim + " calibrate " + log + " -t " + topology + " --algo ring -o ";
  struct Case {
    std::string output, expect;
  };
  for (const Case& c : {Case{dir.path + "/no-such-folder/x.yaml", "folder '" + dir.path + "/no-such-folder' does not exist"},
                        Case{notes, "expected a topology path ending in .yaml or .yml"},
                        Case{topology, "is an input of this command"},
                        Case{dir.path, "is a folder; expected a file path"}}) {
    const Output o = run_shell(command + c.output);
    CAPTURE(c.output);
    CAPTURE(o.out);
    CHECK(o.status == 2);
    CHECK(o.out.find(c.expect) != std::string::npos);
    CHECK(o.out.find('\n') == o.out.size() - 1);   // refused before the fit printed anything
  }
  // The inputs are as they were; a good -o is written whole, and nothing else beside it.
  CHECK(run_shell("cmp -s " + log + " " + kLogs + "together-h100-1node-all-reduce-ring.log").status == 0);
  CHECK(run_shell("cmp -s " + topology + " " + kTopologies + "dgx-h100.yaml").status == 0);
  CHECK(run_shell("cat " + notes).out == "keep me\n");
  REQUIRE(run_shell(command + dir.path + "/fitted.yaml").status == 0);
  CHECK(run_shell(kTpsim + " validate " + dir.path + "/fitted.yaml").status == 0);
  CHECK(run_shell("ls " + dir.path + " | grep -c partial").out == "0\n");
}
