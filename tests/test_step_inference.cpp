// Inference fidelity: precision per tensor class (weights, activations, KV cache, communication)
// in the lowering, the cost model and the memory model, in closed form.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <functional>
#include <string>
#include <vector>

#include "tpsim/cost.hpp"
#include "tpsim/memory.hpp"
#include "tpsim/step_lowering.hpp"

using namespace tpsim;

namespace {

// The GEMM memory term streams operands at gpu.hbm_efficiency x this library fraction.
constexpr double kGemmHbm = GemmShape{}.hbm_efficiency;

// A small Llama-style model (GQA, SwiGLU) serving 4 sequences at TP 2 on a toy GPU.
Scenario small_llama(int tp = 2) {
  Scenario s;
  s.name = "small-llama";
  s.model.name = "llama-small";
  s.model.hidden = 512;
  s.model.ffn = 1024;
  s.model.heads = 8;
  s.model.kv_heads = 2;
  s.model.layers = 2;
  s.model.vocab = 1024;
  s.model.max_seq = 1024;
  s.model.activation = Activation::swiglu;
  s.model.norm = Norm::rmsnorm;
  s.plan.tp = tp;
  s.workload.kind = WorkloadKind::inference;
  s.workload.batch = 4;
  s.workload.prompt = 96;
  s.workload.generate = 32;
  s.topology.name = "toy";
  s.topology.gpu.peak_flops[DType::bf16] = 1e15;
  s.topology.gpu.peak_flops[DType::fp8] = 2e15;
  s.topology.gpu.peak_flops[DType::fp32] = 1e14;
  s.topology.gpu.hbm_bandwidth = 1e12;
  s.topology.gpu.hbm_bytes = 80e9;
  s.topology.gpu.sms = 4;
  s.topology.gpu.gemm_efficiency = 0.8;
  s.topology.gpus_per_node = 8;
  return s;
}

// Every leaf op of rank 0's program (fused ops opened up).
std::vector<Op> leaf_ops(const ProgramSet& set) {
  std::vector<Op> out;
  std::function<void(const Op&)> visit = [&](const Op& op) {
    if (op.parts)
      for (const Op& part : *op.parts) visit(part);
    else
      out.push_back(op);
  };
  for (const Op& op : program_of(set, 0).ops) visit(op);
  return out;
}

const Op& find_op(const std::vector<Op>& ops, const std::string& name_part) {
  for (const Op& op : ops)
    if (op.name.find(name_part) != std::string::npos) return op;
  FAIL("no op named *" << name_part << "*");
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("precision: a class not given takes the model's dtype; GEMMs compute in the wider operand type") {
  Scenario s = small_llama();
  Precision p = precision_of(s);
  CHECK(p.weights == DType::bf16);
  CHECK(p.activations == DType::bf16);
  CHECK(p.kv_cache == DType::bf16);
  CHECK(p.communication == DType::bf16);
  s.model.dtype = DType::fp16;
  s.workload.kv_cache_dtype = DType::fp8;
  p = precision_of(s);
  CHECK(p.weights == DType::fp16);
  CHECK(p.kv_cache == DType::fp8);
  CHECK(gemm_compute_dtype(DType::fp8, DType::bf16) == DType::bf16);   // W8A16: dequantised to bf16
  CHECK(gemm_compute_dtype(DType::fp8, DType::fp8) == DType::fp8);     // W8A8: the fp8 peak
  CHECK(gemm_compute_dtype(DType::bf16, DType::fp8) == DType::bf16);
  CHECK(gemm_compute_dtype(DType::fp32, DType::bf16) == DType::fp32);
}

TEST_CASE("decode lowering: each tensor class moves in its own precision") {
  Scenario s = small_llama();
  const double b = 4, h = 512, t = 2, d = 64, H = 8, K = 2, context = 100;
  const double qkv_cols = (H + 2 * K) * d / t;   // 384: a column shard of q, k, v
  s.workload.weights_dtype = DType::fp8;
  s.workload.kv_cache_dtype = DType::fp8;

  SUBCASE("W8A16: bf16 activations, fp8 weights and KV cache, bf16 all-reduce") {
    const std::vector<Op> ops = leaf_ops(lowering::lower_inference_step(s, true, int64_t(context)));
    const Op& qkv = find_op(ops, "attn.qkv.fwd");
    CHECK(qkv.dtype == DType::bf16);
    CHECK(qkv.gemm.a_bytes == 2);
    CHECK(qkv.gemm.b_bytes == 1);
    CHECK(qkv.gemm.c_bytes == 2);
    CHECK(qkv.hbm_bytes == rel(b * h * 2 + h * qkv_cols * 1 + b * qkv_cols * 2));
    const Op& attention = find_op(ops, "attn.core.fwd");
    CHECK(attention.hbm_bytes == rel(2 * b * context * (K / t) * d * 1 + 2 * b * (H / t) * d * 2));
    const Op& reduce = find_op(ops, "attn.proj.all_reduce");
    CHECK(reduce.collective.bytes == int64_t(b * h * 2));
  }
  SUBCASE("W8A8 with fp8 communication: the GEMM runs on fp8 tensor cores, the all-reduce moves 1 B") {
    s.workload.activations_dtype = DType::fp8;
    s.workload.communication_dtype = DType::fp8;
    const std::vector<Op> ops = leaf_ops(lowering::lower_inference_step(s, true, int64_t(context)));
    const Op& qkv = find_op(ops, "attn.qkv.fwd");
    CHECK(qkv.dtype == DType::fp8);
    CHECK(qkv.hbm_bytes == rel(b * h + h * qkv_cols + b * qkv_cols));
    CHECK(find_op(ops, "attn.proj.all_reduce").collective.bytes == int64_t(b * h));
    CHECK(find_op(ops, "attn.core.fwd").hbm_bytes == rel(2 * b * context * (K / t) * d + 2 * b * (H / t) * d));
  }
  SUBCASE("without workload.precision every class is the model's bf16, as before") {
    s.workload.weights_dtype.reset();
    s.workload.kv_cache_dtype.reset();
    const std::vector<Op> ops = leaf_ops(lowering::lower_inference_step(s, true, int64_t(context)));
    const Op& qkv = find_op(ops, "attn.qkv.fwd");
    CHECK(qkv.dtype == DType::bf16);
    CHECK(qkv.hbm_bytes == rel((b * h + h * qkv_cols + b * qkv_cols) * 2));
    CHECK(find_op(ops, "attn.core.fwd").hbm_bytes == rel((2 * b * context * (K / t) * d + 2 * b * (H / t) * d) * 2));
  }
}

TEST_CASE("GEMM cost with an fp8 weight: its bytes at 1 B, its FLOPs at the bf16 peak unless both operands are fp8") {
  const GpuSpec gpu = small_llama().topology.gpu;
  // A decode GEMM [8, 4096] x [4096, 4096]: memory-bound on this 1 TB/s GPU.
  GemmInfo w8a16{8, 4096, 4096};
  w8a16.a_bytes = 2, w8a16.b_bytes = 1, w8a16.c_bytes = 2;
  const KernelCost c = gemm_cost(gpu, w8a16, DType::bf16);
  CHECK(c.memory_bound == rel((8.0 * 4096 * 2 + 4096.0 * 4096 * 1 + 8.0 * 4096 * 2) / (1e12 * kGemmHbm)));
  const KernelCost bf16 = gemm_cost(gpu, GemmInfo{8, 4096, 4096}, DType::bf16);
  CHECK(c.compute_bound == rel(bf16.compute_bound));   // dequantised: the same bf16 tensor-core time
  const KernelCost fp8 = gemm_cost(gpu, GemmInfo{8, 4096, 4096}, DType::fp8);
  // fp8 peak is twice the bf16 peak here; a tile's fixed time costs more k steps at the fp8 rate
  // (gemm_half_k doubles), so the 4096-deep k loop (32 tiles on 4 SMs: no split-K) ramps slower.
  const double ramp = (4096 + gemm_half_k(gpu, DType::fp8)) / (4096 + gemm_half_k(gpu, DType::bf16));
  CHECK(fp8.compute_bound == rel(bf16.compute_bound / 2 * ramp));
  CHECK(fp8.memory_bound == rel((8.0 * 4096 + 4096.0 * 4096 + 8.0 * 4096) / (1e12 * kGemmHbm)));
}

TEST_CASE("memory: weights and KV cache in their precision, the prefill working set in the activations'") {
  Scenario s = small_llama();
  const MemoryBreakdown bf16 = memory_per_gpu(s, 0);
  const double kv = 2.0 * 2 * 4 * (96 + 32) * (2 / 2) * 64;   // 2 x layers x batch x context x kv/t x d elements
  CHECK(bf16.kv_cache == rel(kv * 2));
  CHECK(bf16.weights == rel(bf16.parameters * 2));
  s.workload.weights_dtype = DType::fp8;
  s.workload.kv_cache_dtype = DType::fp8;
  s.workload.activations_dtype = DType::fp32;
  const MemoryBreakdown mixed = memory_per_gpu(s, 0);
  CHECK(mixed.weights == rel(bf16.parameters * 1));
  CHECK(mixed.kv_cache == rel(kv * 1));
  CHECK(activation_bytes_per_layer(s) == rel(2 * activation_bytes_per_layer(small_llama())));
  CHECK(mixed.weights_dtype == DType::fp8);
  const std::vector<MemoryComponent> parts = mixed.components();
  CHECK(parts[1].detail.find("x 1 B (fp8)") != std::string::npos);
  CHECK(parts[5].detail.find("x 1 B (fp8)") != std::string::npos);
}

TEST_CASE("decode GEMMs and decode attention stream HBM at the realised fraction gpu.hbm_efficiency") {
  Scenario s = small_llama();
  s.topology.gpu.hbm_efficiency = 0.8;
  s.topology.gpu.launch_overhead = 2e-6;
  const GpuSpec& gpu = s.topology.gpu;
  // [8, 4096] x [4096, 4096]: the weights' 32 MiB at 0.8 TB/s (times the library's operand
  // fraction, GemmShape::hbm_efficiency), far above its compute time.
  const KernelCost decode = gemm_cost(gpu, GemmInfo{8, 4096, 4096}, DType::bf16);
  const double bytes = (8.0 * 4096 + 4096.0 * 4096 + 8.0 * 4096) * 2;
  CHECK(decode.memory_bound == rel(bytes / (0.8e12 * kGemmHbm)));
  CHECK(decode.compute_bound < decode.memory_bound);
  CHECK(decode.seconds == rel(bytes / (0.8e12 * kGemmHbm) + 2e-6));
  // Split-K (one output tile, 4 SMs: 4 splits): the fp32 partials stay in L2, HBM moves A, B, C.
  const KernelCost split = gemm_cost(gpu, GemmInfo{128, 128, 4096}, DType::bf16);
  CHECK(split.memory_bound == rel((128.0 * 4096 + 4096.0 * 128 + 128.0 * 128) * 2 / (0.8e12 * kGemmHbm)));
  // Decode attention reads its KV cache (and the query and output) at the same fraction.
  const std::vector<Op> ops = leaf_ops(lowering::lower_inference_step(s, true, 100));
  const Op& attention = find_op(ops, "attn.core.fwd");
  CHECK(attention.kernel.fn == "decode_attention");
  const KernelCost a = op_cost(gpu, attention);
  CHECK(a.memory_bound == rel(attention.hbm_bytes / 0.8e12));
  CHECK(a.compute_bound < a.memory_bound);
  CHECK(a.seconds == rel(attention.hbm_bytes / 0.8e12 + 2e-6));
}

TEST_CASE("prefill in the memory model: the whole batch at once by default, one chunk with workload.prefill_chunk") {
  Scenario s = small_llama();   // batch 4 x prompt 96 = 384 prompt tokens; h 512, 8 heads, tp 2
  const double h = 512, a = 8, t = 2, prompt = 96;
  // Fused attention, sequence-split working set: 34 B per hidden element + a 4 B statistic per head.
  const double per_token = (34 * h + 4 * a) / t;
  const MemoryBreakdown whole = memory_per_gpu(s, 0);
  CHECK(whole.activation_bytes_per_layer == rel(384 * per_token));
  CHECK(whole.prefill_basis == "prefill of the whole batch at once (4 x 96 tokens)");
  const double logits = 4.0 * 1024 / t * 4;   // fp32 logits of the batch's last tokens, vocab-parallel
  CHECK(whole.activations == rel(384 * per_token + logits));

  s.workload.prefill_chunk = 128;   // continuous batching: a 128-token chunk beside the decoding batch
  const MemoryBreakdown chunked = memory_per_gpu(s, 0);
  CHECK(chunked.activation_bytes_per_layer == rel(128 * per_token));
  CHECK(chunked.activations == rel(128 * per_token + logits));
  CHECK(chunked.kv_cache == rel(whole.kv_cache));   // the decoding batch's cache at full context
  CHECK(chunked.total == rel(whole.total - 256 * per_token));
  CHECK(chunked.prefill_basis == "chunked prefill, 128 tokens per step beside the decoding batch");
  CHECK(chunked.components()[4].detail.find("chunked prefill, 128 tokens") != std::string::npos);

  // Unfused attention keeps 5 B per score: each of the chunk's queries against at most `prompt` keys.
  s.topology.gpu.attention_score_bytes = 40;
  CHECK(activation_bytes_per_layer(s) == rel(128 * (34 * h + 5 * a * prompt) / t));

  // A chunk at least the whole batch's prompts is the whole batch at once.
  s.workload.prefill_chunk = 4096;
  s.topology.gpu.attention_score_bytes = 0;
  CHECK(memory_per_gpu(s, 0).activation_bytes_per_layer == rel(whole.activation_bytes_per_layer));
  CHECK(memory_per_gpu(s, 0).prefill_basis == whole.prefill_basis);
}

TEST_CASE("plan.tp_allreduce: the TP all-reduces run one-shot or two-shot, every other collective NCCL's pick") {
  for (const char* choice : {"one_shot", "two_shot", "nccl"}) {
    Scenario s = small_llama();
    s.plan.tp_allreduce = choice;
    const Algorithm want = std::string(choice) == "nccl" ? Algorithm::automatic : parse_algorithm(choice);
    int all_reduces = 0, others = 0;
    for (const Op& op : leaf_ops(lowering::lower_inference_step(s, true, 100))) {
      if (op.kind != OpKind::collective) continue;
      CAPTURE(op.name);
      if (op.collective.op == CollectiveOp::all_reduce) {
        CHECK(op.collective.algorithm == want);
        ++all_reduces;
      } else {
        CHECK(op.collective.algorithm == Algorithm::automatic);
        ++others;
      }
    }
    CHECK(all_reduces >= 2 * 2);   // attention and MLP outputs of both layers
    CHECK(others >= 1);            // the vocab-parallel logits' gather
  }
  // Only all-reduces that fit the custom buffer (plan.tp_allreduce_max, 8 MiB by default, vLLM's):
  // with a 100 kB buffer the prefill's [384, 512] bf16 all-reduces (384 KiB) stay NCCL's, the
  // decode step's [4, 512] (4 KiB) do not.
  Scenario s = small_llama();
  s.plan.tp_allreduce = "one_shot";
  s.plan.tp_allreduce_max = 100e3;
  for (bool decode : {false, true})
    for (const Op& op : leaf_ops(lowering::lower_inference_step(s, decode, decode ? 100 : 96)))
      if (op.kind == OpKind::collective && op.collective.op == CollectiveOp::all_reduce) {
        CAPTURE(op.name);
        CAPTURE(op.collective.bytes);
        CHECK(op.collective.algorithm == (double(op.collective.bytes) <= 100e3 ? Algorithm::one_shot : Algorithm::automatic));
        if (op.name.find("attn.proj") != std::string::npos)
          CHECK(op.collective.algorithm == (decode ? Algorithm::one_shot : Algorithm::automatic));
      }
}
