// The embedded default scenario: the text of examples/default.yaml, so `tpsim run` works from any
// folder. tests/test_spec_load.cpp checks the two never drift apart.
#include "tpsim/spec.hpp"

namespace tpsim {

const char* default_scenario_yaml() {
  return R"yaml(# The default scenario (the one `tpsim run` uses with no argument): Llama-2-7B, Megatron tensor
# parallelism over the 8 GPUs of one DGX H100, one training micro-batch of one 2048-token sequence.
name: llama2-7b-tp8-dgx-h100
topology: dgx-h100            # a preset name (topologies/dgx-h100.yaml) or a path
model: llama2-7b              # a preset name (models/llama2-7b.yaml) or a path
plan:                         # a plan may be inlined, named, or a path
  name: megatron-tp8
  preset: megatron            # column-parallel then row-parallel: one all-reduce per block forward
  tp: 8
  pp: 1
  dp: 1
  sp: false
workload:
  kind: training
  global_batch: 1
  micro_batch: 1
  seq: 2048
numerics: proxy               # off | proxy (shrunk dims, exact divisions) | full
)yaml";
}

}  // namespace tpsim
