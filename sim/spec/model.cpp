// Model YAML -> ModelSpec (see models/llama2-7b.yaml). kv_heads defaults to heads (multi-head
// attention); ffn defaults to 4*hidden for gelu, and must be given for swiglu (no standard ratio).
// A mixture-of-experts model adds a `moe:` mapping (models/mixtral-8x7b.yaml); its ffn and
// moe.expert_ffn are one size, so either may be left out.
#include "spec/limits.hpp"
#include "spec/loading.hpp"

namespace tpsim::spec_detail {

namespace {

// moe: {experts, top_k, expert_ffn, capacity_factor, normalize_top_k}. expert_ffn falls back to
// the model's ffn when that is given. Ranges are check_model's.
MoeSpec read_moe(const Map& e, std::optional<int64_t> ffn) {
  e.only({"experts", "top_k", "expert_ffn", "capacity_factor", "normalize_top_k", "shared_expert_ffn",
          "shared_expert_gate"});
  MoeSpec moe;
  moe.experts = e.integer_up_to("experts", limits::kExperts, "experts per layer");
  moe.top_k = e.integer_up_to("top_k", limits::kExperts, "experts per token");
  if (!ffn && !e.has("expert_ffn"))
    e.fail_here("missing required key 'expert_ffn' (the intermediate size of one expert; or give model.ffn)");
  moe.expert_ffn = e.integer_up_to("expert_ffn", limits::kFfn, "an FFN size", ffn);
  moe.capacity_factor = e.quantity("capacity_factor", "number", 0.0);
  moe.normalize_top_k = e.boolean("normalize_top_k", true);
  moe.shared_expert_ffn = e.integer_up_to("shared_expert_ffn", limits::kFfn, "an FFN size", 0);
  moe.shared_expert_gate = e.boolean("shared_expert_gate", false);
  return moe;
}

}  // namespace

ModelSpec read_model(const Source& src, const YAML::Node& root, const std::string& fallback_name) {
  if (is_hf_config(root)) return read_hf_config(src, root, fallback_name);
  const Map m(src, root, "model");
  // Megatron-LM's argument names (arguments.py) for the mixture-of-experts settings.
  rename_aliases(m, {{"num_experts", "moe.experts"},
                     {"moe_router_topk", "moe.top_k"},
                     {"moe_ffn_hidden_size", "moe.expert_ffn"},
                     {"moe_expert_capacity_factor", "moe.capacity_factor"}});
  m.only({"name", "hidden", "ffn", "heads", "kv_heads", "layers", "vocab", "max_seq", "activation", "norm", "dtype",
          "moe"});
  ModelSpec model;
  model.name = m.string("name", fallback_name);
  model.hidden = m.integer_up_to("hidden", limits::kHidden, "a hidden size");
  model.heads = m.integer_up_to("heads", limits::kHeads, "attention heads");
  model.kv_heads = m.integer_up_to("kv_heads", limits::kHeads, "key/value heads", model.heads);
  model.layers = m.integer_up_to("layers", limits::kLayers, "layers");
  model.vocab = m.integer_up_to("vocab", limits::kVocab, "a vocabulary size");
  model.max_seq = m.integer_up_to("max_seq", limits::kSequence, "tokens");
  const std::string act = m.choice("activation", {"gelu", "swiglu"}, "gelu");
  model.activation = act == "swiglu" ? Activation::swiglu : Activation::gelu;
  if (m.has("moe")) {
    const std::optional<int64_t> ffn =
        m.has("ffn") ? std::optional<int64_t>(m.integer_up_to("ffn", limits::kFfn, "an FFN size")) : std::nullopt;
    model.moe = read_moe(m.map("moe"), ffn);
    // The experts are the MLP: ffn is their size (code elsewhere divides by it).
    if (ffn && *ffn != model.moe.expert_ffn)
      m.fail("ffn", fmt::format("ffn {} differs from moe.expert_ffn {}: a mixture-of-experts model's MLP is its "
                                "experts; leave ffn out or make it equal",
                                *ffn, model.moe.expert_ffn));
    model.ffn = model.moe.expert_ffn;
  } else {
    if (model.activation == Activation::swiglu && !m.has("ffn"))
      m.fail_here("missing required key 'ffn' (swiglu has no standard ffn size; gelu defaults to 4*hidden)");
    model.ffn = m.integer_up_to("ffn", limits::kFfn, "an FFN size", 4 * model.hidden);
  }
  model.norm = m.choice("norm", {"layernorm", "rmsnorm"}, "layernorm") == "rmsnorm" ? Norm::rmsnorm : Norm::layernorm;
  const std::string dtype = m.choice("dtype", {"fp32", "tf32", "bf16", "fp16", "fp8"}, "bf16");
  for (DType d : {DType::fp32, DType::tf32, DType::bf16, DType::fp16, DType::fp8})
    if (dtype == to_string(d)) model.dtype = d;
  return model;
}

}  // namespace tpsim::spec_detail
