// FP8 training as Transformer Engine runs it (precision_of, spec.hpp): the GEMMs compute in FP8 at
// the FP8 peak and FP8 ceiling, while what travels (TP collectives, pipeline sends, the
// distributed optimizer's parameter all-gather) stays BF16. Against the same step in BF16: every
// collective and send carries the same bytes, every GEMM computes in fp8.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "tpsim/lower.hpp"
#include "tpsim/spec.hpp"
#include "tpsim/step_lowering.hpp"

using namespace tpsim;

namespace {

struct Traffic {
  std::map<std::string, double> bytes;   // op name -> bytes (rank 0's program)
  int gemms = 0, fp8_gemms = 0;
};

Traffic traffic(const std::string& dtype) {
  const Scenario s = load_scenario({"", "cluster-h100-ndr", "llama3-8b", "",
                                    {{"topology.nodes", "2"},
                                     {"plan.tp", "4"},
                                     {"plan.pp", "2"},
                                     {"plan.dp", "2"},
                                     {"plan.sp", "true"},
                                     {"plan.distributed_optimizer", "true"},
                                     {"model.dtype", dtype},
                                     {"workload.global_batch", "4"},
                                     {"workload.seq", "2048"}}});
  Traffic t;
  // The step the timing runs (layer pieces merged into runs) for the bytes; one layer's own ops,
  // forward and backward, for the GEMMs.
  const ProgramSet step = lowering::lower_training_step(s);   // named: program_of returns into it
  for (const Op& op : program_of(step, 0).ops) {
    if (op.kind == OpKind::collective) t.bytes[op.name] = op.collective.bytes;
    if (op.kind == OpKind::send) t.bytes[op.name] = op.p2p.bytes;
  }
  LowerOptions block;
  block.backward = true;
  const ProgramSet layer = lower(s, block);
  for (const Op& op : program_of(layer, 0).ops)
    if (op.kind == OpKind::gemm) ++t.gemms, t.fp8_gemms += op.dtype == DType::fp8;
  return t;
}

}  // namespace

TEST_CASE("FP8 training: GEMMs in fp8, the same bytes on the wire as BF16 training") {
  const Traffic bf16 = traffic("bf16"), fp8 = traffic("fp8");
  REQUIRE(!bf16.bytes.empty());
  CHECK(fp8.bytes == bf16.bytes);   // TP reduce-scatters / all-gathers, sends, DP collectives
  REQUIRE(fp8.gemms > 0);
  CHECK(fp8.fp8_gemms == fp8.gemms);
  CHECK(bf16.fp8_gemms == 0);
}
